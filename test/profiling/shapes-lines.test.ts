// The line of every frame through the shapes of Python code a stack reader
// can get wrong: comprehensions (their own frames before 3.12, inlined
// since), generator expressions, lambdas and functions called back from C
// (sorted's key, map, a ctypes callback through libc's qsort: entry frames
// in the chain), decorators, context managers, properties, operators,
// __init__, __getattr__, exec'd code calling back in. The interpreter's own
// f_lineno at each allocation, for every frame of the program's file, is the
// answer; the report must give each of these whole stacks its bytes, on every
// CPython 3.8 - 3.15 found, exact and sampled at a rate of 1 byte.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fixtures } from '../helpers/cli.js';
import { deepest, expectStacksRight, lineCases, runLineCase, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'shapes_lines.py');
const siteLines = siteLinesOf(program);
const cases = lineCases();

describe('lines of every frame through comprehensions, callbacks from C, decorators and dunders', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(1);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (...c) => {
    const { where, expected, got } = await runLineCase(program, siteLines, c);
    // Every shape ran (21 stacks with seed 7), some through C several times over.
    expect(expected.size, where).toBeGreaterThan(15);
    expect(deepest(expected), where).toBeGreaterThan(8);
    expectStacksRight(expected, got, where);
  });
});
