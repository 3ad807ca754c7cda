// A subinterpreter beside the main one (3.14's concurrent.interpreters; the
// private modules before: mod_wsgi's application groups are the same thing).
// A subinterpreter runs `site`, so highwater's bootstrap too; closing it
// used to run the bootstrap's atexit there: an exit dump in the middle of
// the program (two reports) and, after it, every stack without its Python
// frames (29 MiB charged to "[no Python frame]" instead of the line after
// the close). The program (test/fixtures/python/subinterp_lines.py) recurses
// in the main interpreter, runs recursions in a subinterpreter from deep
// inside it, closes the subinterpreter and goes on; each side records the
// line of every frame of its own file at each kept block.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, reportDirs, runProfiled } from '../helpers/cli.js';
import { bytesBySiteStack, deepest, expectStacksRight, lineCases, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'subinterp_lines.py');
const subProgram = join(fixtures, 'python', 'subinterp_sub.py');
const mainSites = siteLinesOf(program);
const subSites = siteLinesOf(subProgram);
const intoSub =
  readFileSync(program, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes('# into-sub')) + 1;
const cases = lineCases().filter(([, , mode]) => mode !== 'profile callback');

describe('a subinterpreter', () => {
  it('has sites to check', () => {
    expect(mainSites.size).toBe(3);
    expect(subSites.size).toBe(2);
    expect(intoSub).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (version, seed, mode, exe, flags, env) => {
    const outFile = join(freshDir('hw-subi-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, String(seed), outFile], { timeoutMs: 120_000, flags: [...flags], env });
    const where = `Python ${version}, seed ${seed}, ${mode} (replay: HW_LINES_SEED=${seed})`;
    expect(r.code, `${where}\n${r.stderr}`).toBe(0);
    // One report, at the program's end.
    expect(reportDirs(r.outDir).length, `${where}\n${r.stderr}`).toBe(1);
    const mainExpected = new Map(Object.entries(JSON.parse(readFileSync(outFile, 'utf8')) as Record<string, number>));
    const subExpected = new Map(Object.entries(JSON.parse(readFileSync(`${outFile}.sub`, 'utf8')) as Record<string, number>));
    expect(deepest(mainExpected), where).toBeGreaterThan(30);
    expect(subExpected.size, where).toBeGreaterThan(20);
    expectStacksRight(mainExpected, bytesBySiteStack(r.outDir, program, mainSites), where);
    const subGot = bytesBySiteStack(r.outDir, subProgram, subSites);
    if (Number(/^3\.(\d+)/.exec(version)![1]) >= 12) {
      expectStacksRight(subExpected, subGot, where);
    } else {
      // Up to 3.11 a thread's stack is read from the thread state that
      // PyGILState_GetThisThreadState gives, the main interpreter's (the
      // frame-evaluation hook of 3.8 - 3.10 is the main interpreter's too):
      // the subinterpreter's blocks are charged to the main line that ran
      // it, with the rest of what the subinterpreter allocated there.
      const subTotal = [...subExpected.values()].reduce((a, b) => a + b, 0);
      const intoSubBytes = [...bytesBySiteStack(r.outDir, program, new Set([intoSub])).values()].reduce((a, b) => a + b, 0);
      expect(subGot.size, where).toBe(0);
      expect(intoSubBytes, where).toBeGreaterThanOrEqual(subTotal * 0.95);
    }
  });
});
