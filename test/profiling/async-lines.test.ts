// The line of every frame in asyncio programs: coroutines that await each
// other, gather children, run as tasks side by side and resume at other
// depths, allocating before and after their awaits. A resumed coroutine's
// frames hang under the event loop that resumed it; the interpreter's own
// f_lineno at each allocation, for every frame of the program's file, is the
// answer, and the report must give each of these whole stacks its bytes, on
// every CPython 3.8 - 3.15 found, exact and sampled at a rate of 1 byte.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fixtures } from '../helpers/cli.js';
import { deepest, expectStacksRight, lineCases, runLineCase, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'async_lines.py');
const siteLines = siteLinesOf(program);
const cases = lineCases();

describe('lines of every frame in asyncio tasks', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(5);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (...c) => {
    const { where, expected, got } = await runLineCase(program, siteLines, c);
    // Many distinct stacks, some of them under the event loop several tasks deep.
    expect(expected.size, where).toBeGreaterThan(100);
    expect(deepest(expected), where).toBeGreaterThan(8);
    expectStacksRight(expected, got, where);
  });
});
