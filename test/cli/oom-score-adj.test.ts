// `highwater run` in a memory cgroup: the CLI is the watcher, in the same
// cgroup as the program, so the program's oom_score_adj is raised as in
// single-container mode (test/init/oom-score-adj.test.ts): the kernel's OOM
// killer takes the CLI last and the report gets written. Real cgroups.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupUnavailable, inCgroupCommand, makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { cliPath, freshDir, MiB, repoRoot } from '../helpers/cli.js';

const unavailable = cgroupUnavailable();
const base = Number(readFileSync('/proc/self/oom_score_adj', 'utf8'));

/** The kernel's arithmetic (mm/oom_kill.c): adj counts totalpages / 1000 pages; the bound is a 128 MiB watcher. */
function expectedDelta(limitBytes: number): number {
  return Math.min(1000, Math.ceil((128 * MiB) / 4096 / Math.floor(limitBytes / 4096 / 1000)));
}

/** The program prints its own oom_score_adj and its parent's (the CLI, or highwater-init's exec of it: same pid). */
const program = 'import os; print(open("/proc/self/oom_score_adj").read().strip(), open("/proc/%d/oom_score_adj" % os.getppid()).read().strip())';

function runIn(cg: TestCgroup, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = [process.execPath, cliPath, 'run', '-o', freshDir('hw-oomadj-cli-'), '--no-browser', '--', 'python3', '-c', program];
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', inCgroupCommand(cg, args)], {
      cwd: repoRoot,
      env: { ...process.env, DISPLAY: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(unavailable !== null)(`highwater run: the program's oom_score_adj${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  afterEach(() => cg?.remove());

  function cgroup(limit: number): TestCgroup {
    const made = makeCgroup(limit);
    if (typeof made === 'string') throw new Error(made);
    return (cg = made);
  }

  it('under a limit: the program is raised by the delta for a 128 MiB watcher, the CLI keeps its own', async () => {
    const r = await runIn(cgroup(512 * MiB));
    expect(r.code, r.stderr).toBe(0);
    const [own, cli] = r.stdout.trim().split(' ').map(Number);
    expect(expectedDelta(512 * MiB)).toBe(251);
    expect(own).toBe(Math.min(1000, base + 251));
    expect(cli).toBe(base);
  }, 60_000);

  it('no limit below the machine memory, or HIGHWATER_OOM_SCORE_ADJ=0: left alone', async () => {
    const r = await runIn(cgroup(totalmem() * 2));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split(' ').map(Number)).toEqual([base, base]);
    cg!.remove();
    const off = await runIn(cgroup(512 * MiB), { HIGHWATER_OOM_SCORE_ADJ: '0' });
    expect(off.stdout.trim().split(' ').map(Number)).toEqual([base, base]);
  }, 60_000);
});
