/**
 * Issue 12 through `highwater watch`, the kernel's OOM killer, a real memory
 * cgroup: a ProcessPoolExecutor (spawn) whose one worker leaks with
 * detection off; the kernel SIGKILLs the worker, the program exits 1
 * (BrokenProcessPool). Nobody reaps these processes for the watcher: the
 * cgroup's oom_kill count tells it the tree was OOM-killed, so the tree's
 * post-mortem says `killed`, with what each process held when it died. A
 * child that had exited normally before is shown as ended, never live at the kill.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { loadConfig } from '../../sidecar/src/config/config.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { atLine } from '../helpers/pool-leak.js';
import { cgroupUnavailable, makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { fixtures, freshDir, lineOf, MiB, repoRoot } from '../helpers/cli.js';
import { startWatch, waitForReports } from '../watcher/processes.js';

const script = join(fixtures, 'python', 'pool_leak.py');
const LEAK = lineOf(script, 'LEAK-LINE');
const HOLD = lineOf(script, 'HOLD-LINE');
const BLOCK = 20 * MiB + 33;
const EARLY_MIB = 40;
const unavailable = cgroupUnavailable();

describe.skipIf(unavailable !== null)(`watch: the kernel OOM-kills a worker${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  afterEach(() => cg?.remove());

  it('the post-mortem says killed, the worker and its bytes named, the early child ended', async () => {
    const made = makeCgroup(700 * MiB);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const runDir = freshDir('hw-mp-oomkill-run-');
    const out = freshDir('hw-mp-oomkill-out-');
    const w = startWatch(runDir, out, ['--warn-after', '0', '--metrics-port', '0', '--disable-oom-detection']);
    onTestFinished(() => void w.child.kill('SIGKILL'));
    await w.waitFor('watching');
    const progress = join(freshDir('hw-mp-progress-'), 'progress');
    const env = {
      ...childEnv(
        {
          ...process.env,
          PROGRESS: progress,
          HOLD_MIB: '30',
          MAIN_MIB: '16',
          LEAK_STEP_MIB: '20',
          KILL_ME_FIRST: '1',
          HOLD_SECONDS: '20',
          EARLY_MIB: String(EARLY_MIB),
          READY_DIR: freshDir('hw-mp-ready-'),
        },
        bundlePaths(repoRoot),
        loadConfig({}, {}),
        runDir,
        'run',
        process.execPath,
      ),
      HIGHWATER_OOM_DETECTION: '0',
    };
    const py = spawn('sh', ['-c', `${made.enterPrefix} python3 '${script}' spawn executor`], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    py.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    py.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    expect(await new Promise((res) => py.on('close', res)), stderr).toBe(1);
    expect(stderr).toContain('BrokenProcessPool');
    const early = Number(/^early (\d+)$/m.exec(stdout)?.[1]);
    const [leakerText, blocksText] = readFileSync(progress, 'utf8').trim().split(' ');
    const leaker = Number(leakerText);
    const blocks = Number(blocksText);

    const dirs = await waitForReports(out, 1, 30_000);
    expect(dirs, w.stderr()).toHaveLength(1);
    const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.trigger).toBe('killed');
    expect(rep.process.pid).toBe(py.pid); // the program, not the first child seen
    const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
    expect(procs.get(leaker)!.state).toBe('killed');
    const live = rep.oomStacks!;
    const leaked = atLine(live, leaker, LEAK);
    expect(
      [blocks, blocks + 1].some((k) => Math.abs(leaked - k * BLOCK) <= 0.05 * k * BLOCK),
      `${leaked} vs ${blocks} blocks`,
    ).toBe(true);
    const held = rep.processes!.map((p) => Math.round(atLine(live, p.pid, HOLD) / MiB)).filter((b) => b > 0);
    // On failure: every process as the report has it (which one lost its bytes, and from what source).
    const seen = JSON.stringify(rep.processes!.map((p) => ({ ...p, hold: atLine(live, p.pid, HOLD) })));
    expect(
      held.sort((a, b) => a - b),
      seen,
    ).toEqual([30, 60]);
    // The child that ended normally before the pool: ended, nothing live at the kill, its own peak kept.
    const e = procs.get(early)!;
    expect(e, JSON.stringify(rep.processes)).toBeDefined();
    expect(e.state).toBe('exited');
    expect(e.liveBytes).toBe(0);
    expect(e.ownPeakBytes).toBeGreaterThanOrEqual(EARLY_MIB * MiB);
    expect(e.ownPeakBytes).toBeLessThan((EARLY_MIB + 8) * MiB);
    expect(live.filter((s) => s.frames[0]?.pid === early)).toEqual([]);
  }, 120_000);
});
