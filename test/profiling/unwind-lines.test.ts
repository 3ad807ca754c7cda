// The line of every frame in code that runs while frames are being left:
// handlers of exceptions raised many frames deeper, `finally` and `__exit__`
// while an exception passes through, a generator's `finally` at close() and
// at its last reference, `__del__` at a `del` and in the cycle collector,
// weakref.finalize callbacks, a Python signal handler, a coroutine's handler
// reached by throw(), and a function whose __code__ was swapped. The frames
// popped between two allocations leave the walk's cache with levels that are
// gone. The interpreter's own f_lineno at each allocation, for every frame
// of the program's file, is the answer; the report must give each of these
// whole stacks its bytes, on every CPython 3.8 - 3.15 found, in every mode.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fixtures } from '../helpers/cli.js';
import { deepest, expectStacksRight, lineCases, runLineCase, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'unwind_lines.py');
const siteLines = siteLinesOf(program);
const cases = lineCases();

describe('lines of every frame in handlers, finally blocks, finalizers and signal handlers', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(1);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (...c) => {
    const { where, expected, got } = await runLineCase(program, siteLines, c);
    expect(expected.size, where).toBeGreaterThan(40);
    expect(deepest(expected), where).toBeGreaterThan(10);
    expectStacksRight(expected, got, where);
  });
});
