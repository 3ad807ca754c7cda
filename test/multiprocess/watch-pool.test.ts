/**
 * Issue 12 through `highwater watch` (the sidecar's path): a Pool(3) running
 * under the shim in a shared run dir gets ONE container-wide report, written
 * once the whole tree has ended (not when the watcher stops), with each
 * worker's bytes at its line as the program printed them (±5 %).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it, onTestFinished } from 'vitest';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { loadConfig } from '../../sidecar/src/config/config.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { expectNear, fixtures, freshDir, lineOf, MiB, repoRoot } from '../helpers/cli.js';
import { startWatch, waitForReports } from '../watcher/processes.js';

const script = join(fixtures, 'python', 'pool_hold.py');
const POOL = lineOf(script, 'POOL-LINE');

function atLine(stacks: ReportJson['stacks'], pid: number, line: number): number {
  let n = 0;
  for (const s of stacks) {
    if (s.frames[0]?.pid !== pid) continue;
    const own = [...s.frames].reverse().find((f) => f.file.endsWith('pool_hold.py'));
    if (own?.line === line) n += s.bytes;
  }
  return n;
}

it('watch: a spawn pool gets one report once the tree ended, the workers and their bytes named', async () => {
  const runDir = freshDir('hw-mp-watch-run-');
  const out = freshDir('hw-mp-watch-out-');
  const w = startWatch(runDir, out, ['--warn-after', '0', '--metrics-port', '0']);
  onTestFinished(() => void w.child.kill('SIGKILL'));
  await w.waitFor('watching');
  const env = childEnv(
    { ...process.env, STEP_MIB: '20', MAIN_MIB: '8', HOLD_SECONDS: '1', BARRIER_DIR: freshDir('hw-mp-barrier-') },
    bundlePaths(repoRoot),
    loadConfig({}, {}),
    runDir,
    'run',
    process.execPath,
  );
  const py = spawn('python3', [script, 'spawn'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  py.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  expect(await new Promise((res) => py.on('close', res))).toBe(0);
  const held = [...stdout.matchAll(/^held (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), bytes: Number(m[2]) }));
  expect(held).toHaveLength(3);

  // Written while the watcher still runs: the tree ended.
  const dirs = await waitForReports(out, 1, 30_000);
  expect(dirs, w.stderr()).toHaveLength(1);
  const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
  expect(rep.process.pid).toBe(py.pid);
  for (const h of held) {
    expect(rep.processes!.find((p) => p.pid === h.pid)!.label).toMatch(/^worker \d+ \(multiprocessing spawn\)$/);
    expectNear(atLine(rep.stacks, h.pid, POOL), h.bytes);
  }
  expect(rep.peakBytes).toBeGreaterThanOrEqual(120 * MiB + 8 * MiB);
  expect(w.stderr()).toMatch(new RegExp(`highwater: +60\\.0 MiB +pid \\d+ \\(worker \\d+\\) +pool_hold\\.py:${POOL} +task`));
  // Only the container file is left in the run dir (the shims share it; the watcher leaves it).
  expect(readdirSync(runDir).filter((n) => n !== 'hw-container')).toEqual([]);
  w.child.kill('SIGTERM');
  expect((await w.exited).code).toBe(0);
  expect(readdirSync(out)).toHaveLength(1); // no second report at the stop
}, 90_000);
