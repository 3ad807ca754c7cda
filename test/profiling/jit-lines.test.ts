// The line of every frame while CPython's JIT runs them (3.14+, built with
// the JIT, turned on by PYTHON_JIT=1 as a user or an image may do: Debian's
// 3.14 and 3.15 ship it off by default). A hot loop's trace is machine code
// that pushes the frames of the functions it calls and keeps their
// instruction pointers only where the interpreter could look; the walk reads
// those frames at every allocation. The program records the line of every
// frame of its file at each block it keeps, as the interpreter reports them,
// and counts the loop iterations that JIT code ran: a run where the JIT never
// ran would prove nothing, so that is asserted too.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, pythons, runProfiled } from '../helpers/cli.js';
import { bytesBySiteStack, deepest, expectStacksRight, lineSeeds, siteLinesOf } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'jit_lines.py');
const siteLines = siteLinesOf(program);

function hasJit(exe: string): boolean {
  const r = spawnSync(exe, ['-c', 'import sys; print(hasattr(sys, "_jit") and sys._jit.is_available())'], { encoding: 'utf8' });
  return r.stdout.trim() === 'True';
}
const jitPythons = pythons().filter((p) => hasJit(p.path));
const modes = [
  ['exact', []],
  ['sampled', ['--sample-rate', '1']],
] as const;
const cases = jitPythons.flatMap((p) => lineSeeds.flatMap((seed) => modes.map(([mode, flags]) => [p.version, seed, mode, p.path, flags] as const)));

describe('lines of every frame under the JIT', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(2);
  });

  // No CPython here built with the JIT: nothing to run (pyenv's 3.8 - 3.13
  // are not; .ci/run's Debian 3.14 and 3.15 are).
  it.skipIf(cases.length === 0).each(cases)('Python %s, seed %i, %s', async (version, seed, mode, exe, flags) => {
    const outFile = join(freshDir('hw-jit-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, String(seed), outFile], { timeoutMs: 120_000, flags: [...flags], env: { PYTHON_JIT: '1' } });
    const where = `Python ${version}, seed ${seed}, ${mode}, PYTHON_JIT=1 (replay: HW_LINES_SEED=${seed})`;
    expect(r.code, `${where}\n${r.stderr}`).toBe(0);
    const out = JSON.parse(readFileSync(outFile, 'utf8')) as { stacks: Record<string, number>; iterations: number[]; jit: number[] };
    // The two loops whose calls JIT code makes: most of their iterations ran
    // in it (about 45 % and 40 - 85 % measured on 3.14.10 and 3.15.2).
    for (const k of [0, 1]) expect(out.jit[k]! / out.iterations[k]!, `${where}: loop ${k + 1} in JIT code`).toBeGreaterThan(0.25);
    const expected = new Map(Object.entries(out.stacks));
    expect(expected.size, where).toBeGreaterThanOrEqual(4);
    expect(deepest(expected), where).toBeGreaterThanOrEqual(5);
    expectStacksRight(expected, bytesBySiteStack(r.outDir, program, siteLines), where);
  });
});
