/**
 * A program that execs another in the same process (os.execv; a program
 * re-executing itself). The new Python image starts a new state file under
 * the same pid: without the exec hooks (native/shim/children.c) the first
 * program's peak was lost (the report showed only the second's 30 MiB, not
 * the first's 50 MiB) and its bytes stayed in the container sum while the
 * second one ran. Now the first ends at the exec as at an exit: its own
 * report, its bytes out of the sum; an exec that fails changes nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesAtLine, fixtures, freshDir, lineOf, MiB, readReport, reportDirs, runProfiled } from '../helpers/cli.js';

const script = join(fixtures, 'python', 'exec_self.py');
const file = 'exec_self.py';

/** A bytearray of n MiB: n MiB and its terminating byte, in one block. */
function expectBlock(bytes: number, mib: number, what: string): void {
  expect(bytes, what).toBeGreaterThanOrEqual(mib * MiB);
  expect(bytes, what).toBeLessThan(mib * MiB + 4096);
}

async function run(mode: string) {
  const out = join(freshDir('hw-exec-'), 'seen.txt');
  const r = await runProfiled([script, mode, out], { timeoutMs: 60_000 });
  expect(r.code, r.stderr).toBe(0);
  return { r, seen: readFileSync(out, 'utf8').trim().split(/\s+/), reports: reportDirs(r.outDir).map(readReport) };
}

describe('exec in the same process', () => {
  it('python execs python: each program gets its report, the first one out of the sum before the second starts', async () => {
    const { r, seen, reports } = await run('python');
    expect(reports, r.stderr).toHaveLength(2);
    const [first, second] = reports as [ReturnType<typeof readReport>, ReturnType<typeof readReport>];
    expect(first.process.pid).toBe(Number(seen[0]));
    expect(second.process.pid).toBe(Number(seen[0]));
    expectBlock(bytesAtLine(first, file, lineOf(script, '# FIRST')), 50, 'the first program at its line');
    expectBlock(bytesAtLine(second, file, lineOf(script, '# SECOND')), 30, 'the second program at its line');
    expect(bytesAtLine(second, file, lineOf(script, '# FIRST'))).toBe(0);
    // The sum the second program saw holds its 30 MiB (within a 1 MiB
    // quantum), not the first's 50 MiB as well.
    expect(Number(seen[1])).toBeGreaterThan(29 * MiB);
    expect(Number(seen[1])).toBeLessThan(40 * MiB);
  });

  it('an exec that fails changes nothing: the errno, one report with both blocks, the bytes back in the sum', async () => {
    const { r, seen, reports } = await run('fail');
    expect(seen[0]).toBe('ENOENT');
    expect(reports, r.stderr).toHaveLength(1);
    expectBlock(bytesAtLine(reports[0]!, file, lineOf(script, '# BEFORE')), 20, 'before the exec');
    expectBlock(bytesAtLine(reports[0]!, file, lineOf(script, '# AFTER')), 10, 'after it');
    expect(Number(seen[1])).toBeGreaterThan(29 * MiB);
  });

  it('python execs a shell: the report of the python program, and its bytes out of the sum', async () => {
    const { r, seen, reports } = await run('shell');
    expect(reports, r.stderr).toHaveLength(1);
    expectBlock(bytesAtLine(reports[0]!, file, lineOf(script, '# SHELL')), 40, 'the python program at its line');
    expect(Number(seen[0])).toBeLessThan(MiB);
  });
});
