/**
 * The watcher lives inside the memory limit it reports on (single-container
 * mode): the container-wide post-mortem of sixteen small spawn workers must
 * be rendered in little memory. A real run dir (test/fixtures/python/
 * small_workers.py under the shim, the workers SIGKILLed while they hold),
 * rendered by the real `highwater watch --once` under /usr/bin/time; its
 * peak RSS is compared with the same command over an empty run dir (Node and
 * the modules), so the bound is on what the report costs.
 *
 * Measured on a loaded 2-core machine with Node 24 (the bundled one, which
 * `npx vitest` runs), no memory limit (V8 sizes its heap for the whole
 * machine): +50 to +60 MiB. Before `watch` set V8's heap growth
 * (cli/heap.ts) and report.json was written in chunks: +119 to +146 MiB,
 * V8 letting the heap fill with the render's short-lived strings; with the
 * chunks alone, +130. The bound leaves room for a loaded machine and fails
 * without cli/heap.ts (tried: +113 and +118 MiB).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { loadConfig } from '../../sidecar/src/config/config.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { cliPath, fixtures, freshDir, MiB, repoRoot } from '../helpers/cli.js';

const WORKERS = 16;
/** What rendering the post-mortem may add to the watcher's peak RSS (Node itself excluded). */
const BOUND = 95 * MiB;

/** `highwater watch --once` over runDir under /usr/bin/time: exit code and peak RSS in bytes. */
function watchOnce(runDir: string, outDir: string): Promise<{ code: number | null; maxRss: number; stderr: string }> {
  const timeOut = join(freshDir('hw-time-'), 'rss');
  const args = ['-f', '%M', '-o', timeOut, process.execPath, cliPath, 'watch', '--once', '--run-dir', runDir, '--output', outDir];
  return new Promise((res) => {
    execFile(
      '/usr/bin/time',
      [...args, '--warn-after', '0', '--metrics-port', 'off', '--disable-oom-detection'],
      { cwd: repoRoot, env: { ...process.env, HIGHWATER_LOG_LEVEL: 'warn', HIGHWATER_TERMINATION_LOG: '/nonexistent/termination-log' } },
      (err, _out, stderr) =>
        res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, maxRss: Number(readFileSync(timeOut, 'utf8').trim()) * 1024, stderr }),
    );
  });
}

/** Sixteen spawn workers under the shim, SIGKILLed while they hold: their state files stay in runDir. */
async function killedWorkers(runDir: string): Promise<number[]> {
  const out = freshDir('hw-small-workers-');
  const env = childEnv(
    { ...process.env, OUT: out, WORKERS: String(WORKERS), CAP_MIB: '4', HOLD_SECONDS: '60' },
    bundlePaths(repoRoot),
    loadConfig({}, {}),
    runDir,
    'run',
    process.execPath,
  );
  const py = spawn('python3', [join(fixtures, 'python', 'small_workers.py')], {
    cwd: repoRoot,
    env: { ...env, HIGHWATER_OOM_DETECTION: '0' },
    stdio: 'ignore',
  });
  const exited = new Promise((res) => py.on('close', res));
  const workersFile = join(out, 'workers');
  for (let i = 0; i < 600 && !existsSync(workersFile); i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 3000)); // every worker tracking and holding its blocks
  const pids = readFileSync(workersFile, 'utf8').trim().split(' ').map(Number);
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  expect(await exited).toBe(3); // the parent saw a worker killed
  return pids;
}

describe('watch: the post-mortem of many processes in bounded memory', () => {
  it(`${WORKERS} killed workers: the report rendered, at most +${BOUND / MiB} MiB RSS over an idle watcher`, async () => {
    const runDir = freshDir('hw-render-mem-run-');
    const pids = await killedWorkers(runDir);
    const idle = await watchOnce(freshDir('hw-render-mem-empty-'), freshDir('hw-render-mem-out0-'));
    expect(idle.code, idle.stderr).toBe(0);
    const out = freshDir('hw-render-mem-out-');
    const r = await watchOnce(runDir, out);
    expect(r.code, r.stderr).toBe(0);
    const dirs = readdirSync(out);
    expect(dirs).toHaveLength(1);
    const rep = JSON.parse(readFileSync(join(out, dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.container!.processCount).toBe(WORKERS + 2); // the program and its resource tracker
    const killed = rep.processes!.filter((p) => pids.includes(p.pid));
    expect(killed.length).toBeGreaterThan(0);
    for (const p of killed) expect(p.state).toBe('killed');
    console.log(
      `post-mortem of ${rep.container!.processCount} processes: watcher max RSS ${(r.maxRss / MiB).toFixed(0)} MiB, idle ${(idle.maxRss / MiB).toFixed(0)} MiB`,
    );
    expect(r.maxRss - idle.maxRss).toBeLessThan(BOUND);
  }, 180_000);
});
