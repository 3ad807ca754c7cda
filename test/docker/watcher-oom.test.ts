// The kernel's OOM killer takes the watcher last (single-container mode).
// Sixteen small spawn workers grow together past the container's limit,
// each smaller than the watcher (Node, ~75 MB RSS), with detection disabled:
// highwater-init raised the command's oom_score_adj, so the kernel kills
// workers, the watcher survives and writes the post-mortem. With
// HIGHWATER_OOM_SCORE_ADJ=0 (the init before the fix) the kernel kills the
// watcher instead: `watcher ended (status 137)` and no report.
// Run alone with `npx vitest run test/docker/watcher-oom.test.ts`.
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { buildImages, docker, ensureEngine, repoRoot, reportsIn, stackStatus, waitForReport } from '../helpers/docker.js';

const engine = ensureEngine();
const stack = stackStatus();
const ready = engine.ok && stack.ok;
if (!engine.ok) console.warn(`skipping Docker watcher OOM tests: ${engine.reason}`);

const MiB = 1024 * 1024;
const IMAGE = 'highwater-test-small-workers';
const LIMIT = 400 * MiB;
const script = join(repoRoot, 'test/fixtures/python/small_workers.py');

/** mm/oom_kill.c counts oom_score_adj in units of totalpages / 1000 (the limit, in a cgroup OOM). */
const DELTA = Math.ceil((128 * MiB) / 4096 / Math.floor(LIMIT / 4096 / 1000));

/** No start delay: workers may be killed while the watcher (Node) still starts, before it saw any process. */
function runWorkers(env: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'hw-small-workers-'));
  chmodSync(dir, 0o777);
  const run = docker([
    'run',
    '--rm',
    '--network',
    'none',
    '--memory',
    String(LIMIT),
    '--memory-swap',
    String(LIMIT),
    '-e',
    'HIGHWATER_WATCH=1',
    '-e',
    'HIGHWATER_OOM_DETECTION=0',
    '-e',
    'WORKERS=16',
    '-e',
    'CAP_MIB=16',
    '-e',
    'HOLD_SECONDS=5',
    ...env.flatMap((e) => ['-e', e]),
    '-v',
    `${dir}:/reports`,
    IMAGE,
    'python3',
    'small_workers.py',
  ]);
  return { dir, run };
}

/** What the command read at its start: its own oom_score_adj, the watcher's, the watcher's pid. */
function adjs(dir: string): { command: number; watcher: number; watcherPid: number } {
  const [command, watcher, watcherPid] = readFileSync(join(dir, 'adj'), 'utf8').trim().split(' ').map(Number);
  return { command: command!, watcher: watcher!, watcherPid: watcherPid! };
}

describe.skipIf(!ready)("docker: many small workers run out of memory, the kernel's OOM killer takes the watcher last", () => {
  beforeAll(async () => {
    buildImages('job');
    const ctx = mkdtempSync(join(tmpdir(), 'hw-small-workers-image-'));
    copyFileSync(script, join(ctx, 'small_workers.py'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM highwater-demo-job\nCOPY small_workers.py /app/small_workers.py\n');
    const b = await docker(['build', '-q', '-t', IMAGE, ctx]);
    if (b.code !== 0) throw new Error(`docker build: ${b.stderr}`);
  }, 3_000_000);

  it('workers are killed, the watcher survives and writes the post-mortem', async () => {
    const { dir, run } = runWorkers([]);
    const r = await run;
    expect(r.code, r.stderr).toBe(137);
    expect(r.stderr).not.toContain('watcher ended');
    const killed = JSON.parse(/killed (\[.*\])/.exec(r.stdout)![1]!) as number[];
    expect(killed.length, r.stdout).toBeGreaterThan(0);
    const reportDir = await waitForReport(dir, 10_000);
    expect(reportDir, r.stderr).toBeDefined();
    const rep = JSON.parse(readFileSync(join(reportDir!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.trigger).toBe('killed');
    const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
    for (const pid of killed) expect(procs.get(pid)!.state).toBe('killed');
    const workers = readFileSync(join(dir, 'workers'), 'utf8').trim().split(' ').map(Number);
    expect(workers.filter((pid) => procs.get(pid)?.label?.startsWith('worker'))).toHaveLength(16);
    const a = adjs(dir);
    expect(a.watcherPid).toBeGreaterThan(0);
    expect(a.command).toBe(Math.min(1000, a.watcher + DELTA));
    expect(DELTA).toBe(322);
  }, 300_000);

  it('HIGHWATER_OOM_SCORE_ADJ=0 (as before): the kernel kills the watcher, no report', async () => {
    const { dir, run } = runWorkers(['HIGHWATER_OOM_SCORE_ADJ=0']);
    const r = await run;
    expect(r.code, r.stderr).toBe(137);
    const a = adjs(dir);
    expect(a.command).toBe(a.watcher);
    expect(r.stderr).toContain('highwater-init: watcher ended (status 137)');
    await new Promise((res) => setTimeout(res, 2000));
    expect(reportsIn(dir)).toEqual([]);
  }, 300_000);
});
