// The line of every frame with Python threads recursing at once: four
// threads in deep, shifting recursion, the GIL handed over every 10 us (so
// they switch mid-recursion), libc's malloc called through ctypes, which
// releases the GIL (another thread runs Python while one is inside malloc).
// Each thread's own f_lineno at each allocation, for every frame of the
// program's file, is the answer; the report must give each of these whole
// stacks its bytes, on every CPython 3.8 - 3.15 found, exact and sampled at a
// rate of 1 byte.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fixtures } from '../helpers/cli.js';
import { deepest, expectStacksRight, lineCases, runLineCase, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'threads_lines.py');
const siteLines = siteLinesOf(program);
const cases = lineCases();

describe('lines of every frame in threads recursing at once', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(3);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (...c) => {
    const { where, expected, got } = await runLineCase(program, siteLines, c);
    // Many distinct stacks, deep ones among them, from four threads.
    expect(expected.size, where).toBeGreaterThan(1000);
    expect(deepest(expected), where).toBeGreaterThan(40);
    expectStacksRight(expected, got, where);
  });
});
