// The line of every frame, at depth: a recursion up to ~190 frames deep
// (under the report's MAX_DEPTH, so peak-memory.folded has every frame) whose
// shape keeps changing, with one callee called from two lines of one caller,
// so that between two allocations only a caller deep down moves while every
// frame above it comes back at the same address, code and instruction (what
// a frame-walk cache that stopped at the first unchanged frame would get
// wrong). The program records, at each allocation, the line of every frame of
// its file as the interpreter reports it (f_lineno); the report must give each
// of these whole stacks its bytes, on every CPython 3.8 - 3.15 found.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fixtures } from '../helpers/cli.js';
import { deepest, expectStacksRight, lineCases, runLineCase, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'deep_lines.py');
const siteLines = siteLinesOf(program);
const cases = lineCases();

describe('lines of every frame in deep, shifting recursion', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(3);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (...c) => {
    const { where, expected, got } = await runLineCase(program, siteLines, c);
    // Deep enough to matter, and many distinct stacks.
    expect(deepest(expected), where).toBeGreaterThan(120);
    expect(expected.size, where).toBeGreaterThan(300);
    expectStacksRight(expected, got, where);
  });
});
