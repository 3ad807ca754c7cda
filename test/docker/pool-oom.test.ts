// Issue 12 in a real container: a Pool(3) whose one worker leaks, under
// highwater-init (the product's Docker path: the job image's ENTRYPOINT, the
// watcher in the container with HIGHWATER_WATCH=1), with a real memory limit.
// The container exits 53 and the report on the volume names the worker (pid
// and label), its line with the bytes it really held (±5 %), and every other
// process's memory; with detection disabled the kernel's OOM killer ends the
// worker: exit 137 and a post-mortem of every process.
// Run alone with `npx vitest run test/docker/pool-oom.test.ts`.
import { copyFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { atLine } from '../helpers/pool-leak.js';
import { buildImages, docker, ensureEngine, repoRoot, stackStatus, waitForReport } from '../helpers/docker.js';

const engine = ensureEngine();
const stack = stackStatus();
const ready = engine.ok && stack.ok;
if (!engine.ok) console.warn(`skipping Docker pool tests: ${engine.reason}`);

const MiB = 1024 * 1024;
const IMAGE = 'highwater-test-pool-leak';
const script = join(repoRoot, 'test/fixtures/python/pool_leak.py');
const lineOf = (mark: string) =>
  readFileSync(script, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(`# ${mark}`)) + 1;
const LEAK = lineOf('LEAK-LINE');
const HOLD = lineOf('HOLD-LINE');
const MAIN = lineOf('MAIN-LINE');
const BLOCK = 20 * MiB + 33; // b"x" * n: n bytes and the bytes object's 33-byte header

function reportsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hw-pool-reports-'));
  chmodSync(dir, 0o777);
  return dir;
}

/** The leaker's pid and live blocks, as the worker itself wrote them (what it really held). */
function progress(dir: string): { leaker: number; blocks: number } {
  const [pid, blocks] = readFileSync(join(dir, 'progress'), 'utf8').trim().split(' ');
  return { leaker: Number(pid), blocks: Number(blocks) };
}

function expectLeakerBytes(leaked: number, blocks: number): void {
  // The block in flight when it stopped may or may not have been live.
  expect(
    [blocks, blocks + 1].some((k) => Math.abs(leaked - k * BLOCK) <= 0.05 * k * BLOCK),
    `${leaked} bytes at the leak line vs ${blocks} blocks`,
  ).toBe(true);
}

function runPool(dir: string, args: string[], env: string[]): ReturnType<typeof docker> {
  return docker([
    'run',
    '--rm',
    '--network',
    'none',
    '--memory',
    '700m',
    '--memory-swap',
    '700m',
    '-e',
    'HIGHWATER_WATCH=1',
    '-e',
    'PROGRESS=/reports/progress',
    '-e',
    'HOLD_MIB=30',
    '-e',
    'MAIN_MIB=16',
    '-e',
    'LEAK_STEP_MIB=20',
    '-e',
    'READY_DIR=/tmp/ready',
    ...env.flatMap((e) => ['-e', e]),
    '-v',
    `${dir}:/reports`,
    IMAGE,
    'python3',
    'pool_leak.py',
    ...args,
  ]);
}

describe.skipIf(!ready)('docker: a pool whose one worker leaks, under highwater-init', () => {
  beforeAll(async () => {
    buildImages('job');
    // The demo job image (highwater-init + the full bundle) with the pool program added.
    const ctx = mkdtempSync(join(tmpdir(), 'hw-pool-image-'));
    copyFileSync(script, join(ctx, 'pool_leak.py'));
    writeFileSync(join(ctx, 'Dockerfile'), 'FROM highwater-demo-job\nCOPY pool_leak.py /app/pool_leak.py\n');
    const b = await docker(['build', '-q', '-t', IMAGE, ctx]);
    if (b.code !== 0) throw new Error(`docker build: ${b.stderr}`);
  }, 3_000_000);

  it('exit 53; the report names the worker, its line and bytes, and every process', async () => {
    const dir = reportsDir();
    const r = await runPool(dir, ['spawn'], []);
    expect(r.code, r.stderr).toBe(53);
    const { leaker, blocks } = progress(dir);
    const reportDir = await waitForReport(dir, 10_000);
    expect(reportDir, r.stderr).toBeDefined();
    const rep = JSON.parse(readFileSync(join(reportDir!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.trigger).toBe('oom');
    expect(rep.container!.oomPid).toBe(leaker);
    const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
    expect(procs.get(leaker)!.label).toMatch(/^worker \d \(multiprocessing spawn\)$/);
    const live = rep.oomStacks!;
    expectLeakerBytes(atLine(live, leaker, LEAK), blocks);
    // The other processes' memory when it ran out: the two holders (30 and 60 MiB) and the program's 16 MiB.
    const held = rep.processes!.map((p) => Math.round(atLine(live, p.pid, HOLD) / MiB)).filter((b) => b > 0);
    expect(held.sort((a, b) => a - b)).toEqual([30, 60]);
    const main = rep.process.pid;
    expect(Math.abs(atLine(live, main, MAIN) - 16 * MiB)).toBeLessThanOrEqual(0.05 * 16 * MiB);
    expect(rep.processes!.length).toBeGreaterThanOrEqual(4); // the program, 3 workers (and the resource tracker)
    expect(existsSync(join(reportDir!, 'index.html'))).toBe(true);
  }, 300_000);

  it("detection disabled: the kernel's OOM killer ends the worker, exit 137 and a post-mortem of every process", async () => {
    const dir = reportsDir();
    const r = await runPool(dir, ['spawn', 'executor'], ['HIGHWATER_OOM_DETECTION=0', 'KILL_ME_FIRST=1', 'HOLD_SECONDS=20']);
    expect(r.code, r.stderr).toBe(137);
    expect(r.stderr).toContain('BrokenProcessPool');
    const { leaker, blocks } = progress(dir);
    const reportDir = await waitForReport(dir, 10_000);
    expect(reportDir, r.stderr).toBeDefined();
    const rep = JSON.parse(readFileSync(join(reportDir!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.trigger).toBe('killed');
    const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
    expect(procs.get(leaker)!.state).toBe('killed');
    const live = rep.oomStacks!;
    expectLeakerBytes(atLine(live, leaker, LEAK), blocks);
    const held = rep.processes!.map((p) => Math.round(atLine(live, p.pid, HOLD) / MiB)).filter((b) => b > 0);
    expect(held.sort((a, b) => a - b)).toEqual([30, 60]);
  }, 300_000);
});
