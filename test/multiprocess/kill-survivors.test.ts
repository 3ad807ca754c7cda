/**
 * Issue 12, bytes AT the kernel's OOM kill: with detection off, the kernel
 * SIGKILLs a leaking worker in a real memory cgroup; the parent and the
 * other workers outlive it, free what they held (FREE_AFTER s after they
 * learn of the kill), and only then end by themselves (EXIT_AFTER s later).
 * Their state files' live bytes at their end are then ~0 at their lines, so
 * only the shim's copy taken when each saw the cgroup's oom_kill count move
 * (the `kill` area) can say what they held when the container ran out.
 * Covered through `highwater run` (spawn: workers end by a normal exit) and
 * `highwater watch` (fork: workers end through os._exit).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { loadConfig } from '../../sidecar/src/config/config.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { cgroupUnavailable, makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { cliPath, fixtures, freshDir, lineOf, MiB, reportDirs, repoRoot } from '../helpers/cli.js';
import { startWatch, waitForReports } from '../watcher/processes.js';

const script = join(fixtures, 'python', 'kill_survivors.py');
const PARENT = lineOf(script, 'PARENT-LINE');
const WORKER = lineOf(script, 'WORKER-LINE');
const LEAK = lineOf(script, 'LEAK-LINE');
const PARENT_MIB = 60;
const WORKER_MIB = 30;
const BLOCK = 20 * MiB + 33; // b"x" * n: n bytes and the bytes object's 33-byte header
const unavailable = cgroupUnavailable();

/** Bytes at `line` of kill_survivors.py in process `pid`'s part of `stacks`. */
function atLine(stacks: ReportJson['stacks'], pid: number, line: number): number {
  let n = 0;
  for (const s of stacks) {
    if (s.frames[0]?.pid !== pid) continue;
    const own = [...s.frames].reverse().find((f) => f.file.endsWith('kill_survivors.py'));
    if (own?.line === line) n += s.bytes;
  }
  return n;
}

function near(actual: number, expected: number, what: string): void {
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).toBeLessThanOrEqual(0.05 * expected);
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number;
}

function runShell(command: string, env: NodeJS.ProcessEnv): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', command], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, pid: child.pid! });
    });
  });
}

/** The report's claims, checked against what the program did. */
function checkAtKill(rep: ReportJson, stdout: string, progress: string, parentPid: number): void {
  expect(rep.trigger).toBe('killed');
  const workers = [...stdout.matchAll(/^worker (\d+)$/gm)].map((m) => Number(m[1]));
  expect(workers, stdout).toHaveLength(2);
  const killed = /^killed (\d+) (-?\d+)$/m.exec(stdout);
  expect(killed?.[2], stdout).toBe('-9');
  const [leakerText, blocksText] = readFileSync(progress, 'utf8').trim().split(' ');
  const leaker = Number(leakerText);
  expect(leaker).toBe(Number(killed![1]));
  const blocks = Number(blocksText);

  const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
  const live = rep.oomStacks!;
  // The survivors: what they held at the kill, from the shim's copy (they freed it all before their end).
  near(atLine(live, parentPid, PARENT), PARENT_MIB * MiB, 'parent at PARENT-LINE');
  expect(procs.get(parentPid)!.liveSource).toBe('kill');
  for (const w of workers) {
    near(atLine(live, w, WORKER), WORKER_MIB * MiB, `worker ${w} at WORKER-LINE`);
    expect(procs.get(w)!.liveSource).toBe('kill');
  }
  // The killed leaker: its blocks at its line, from its state file at its death.
  expect(procs.get(leaker)!.state).toBe('killed');
  expect(procs.get(leaker)!.liveSource).toBe('state');
  const leaked = atLine(live, leaker, LEAK);
  expect(
    [blocks, blocks + 1].some((k) => Math.abs(leaked - k * BLOCK) <= 0.05 * k * BLOCK),
    `${leaked} vs ${blocks} blocks`,
  ).toBe(true);
}

function programEnv(progress: string): NodeJS.ProcessEnv {
  return {
    PROGRESS: progress,
    PARENT_MIB: String(PARENT_MIB),
    WORKER_MIB: String(WORKER_MIB),
    WORKERS: '2',
    LEAK_STEP_MIB: '20',
    FREE_AFTER: '1',
    EXIT_AFTER: '1.5',
  };
}

describe.skipIf(unavailable !== null)(`survivors of the kernel's OOM kill, at the kill${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  afterEach(() => cg?.remove());

  it('highwater run (spawn): the parent and the workers at what they held when the leaker was killed', async () => {
    const made = makeCgroup(500 * MiB);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const outDir = freshDir('hw-ks-run-');
    const progress = join(freshDir('hw-ks-progress-'), 'progress');
    const argv = [process.execPath, cliPath, 'run', '-o', outDir, '--no-browser', '--disable-oom-detection', '--', 'python3', script, 'spawn'];
    const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const r = await runShell(`${made.enterPrefix} ${quoted}`, { ...process.env, DISPLAY: '', ...programEnv(progress) });
    expect(r.code, r.stderr).toBe(137);
    const dirs = reportDirs(outDir);
    expect(dirs, r.stderr).toHaveLength(1);
    const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
    checkAtKill(rep, r.stdout, progress, rep.process.pid);
  }, 120_000);

  it('highwater watch (fork): the same, workers ending through os._exit', async () => {
    const made = makeCgroup(500 * MiB);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const runDir = freshDir('hw-ks-rundir-');
    const out = freshDir('hw-ks-out-');
    const w = startWatch(runDir, out, ['--warn-after', '0', '--metrics-port', '0', '--disable-oom-detection']);
    onTestFinished(() => void w.child.kill('SIGKILL'));
    await w.waitFor('watching');
    const progress = join(freshDir('hw-ks-progress-'), 'progress');
    const env = {
      ...childEnv({ ...process.env, ...programEnv(progress) }, bundlePaths(repoRoot), loadConfig({}, {}), runDir, 'run', process.execPath),
      HIGHWATER_OOM_DETECTION: '0',
    };
    const r = await runShell(`${made.enterPrefix} python3 '${script}' fork`, env);
    expect(r.code, r.stderr).toBe(0);
    const dirs = await waitForReports(out, 1, 30_000);
    expect(dirs, w.stderr()).toHaveLength(1);
    const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.process.pid).toBe(r.pid);
    checkAtKill(rep, r.stdout, progress, r.pid);
  }, 120_000);
});
