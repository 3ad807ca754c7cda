/**
 * Issue 12, the container-wide answer from `highwater run`, real processes in
 * a real memory cgroup: a Pool(3) whose one worker leaks. The CLI exits 53
 * (the parent alone would exit 1 or die of SIGTERM), prints the process
 * holding the most and its line, and writes ONE report whose root splits by
 * process, with every process's memory when it ran out, bytes at named lines
 * checked against what each process really holds.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { atLine } from '../helpers/pool-leak.js';
import { cgroupUnavailable, describeCgroup, inCgroupCommand, killCgroup, makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { cliPath, expectNear, fixtures, freshDir, lineOf, MiB, reportDirs, repoRoot } from '../helpers/cli.js';

const script = join(fixtures, 'python', 'pool_leak.py');
const LEAK = lineOf(script, 'LEAK-LINE');
const HOLD = lineOf(script, 'HOLD-LINE');
const MAIN = lineOf(script, 'MAIN-LINE');
const unavailable = cgroupUnavailable();

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  outDir: string;
  /** Set when the run hung: what was still in the cgroup (killed then), and the stderr tail. */
  hung?: string;
}

/** How long the CLI may run, and how long its pipes may stay open after it exited (orphans of the program). */
const RUN_MS = 100_000;
const PIPES_AFTER_EXIT_MS = 10_000;

function runInCgroup(cg: TestCgroup, args: string[], env: NodeJS.ProcessEnv, flags: string[] = []): Promise<Outcome> {
  const outDir = freshDir('hw-mp-oom-');
  const argv = [process.execPath, cliPath, 'run', '-o', outDir, '--no-browser', ...flags, '--', 'python3', script, ...args];
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', inCgroupCommand(cg, argv)], {
      cwd: repoRoot,
      env: { ...process.env, DISPLAY: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let hung: string | undefined;
    let exited: number | null | undefined;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A hang must say what hung, and end: `close` waits for every holder of
    // the pipes, the program's processes included, so kill the whole cgroup
    // (the CLI is in it too: sh moved itself there, then exec'd it).
    const giveUp = (why: string) => {
      hung = `${why}; still in the cgroup (killed now):\n${describeCgroup(cg)}\nstderr tail:\n${stderr.slice(-3000)}`;
      killCgroup(cg);
      setTimeout(() => resolve({ code: exited ?? null, stdout, stderr, outDir, hung }), 2000).unref();
    };
    const timer = setTimeout(() => giveUp(`highwater did not exit within ${RUN_MS / 1000} s`), RUN_MS);
    let pipes: NodeJS.Timeout | undefined;
    child.on('exit', (code) => {
      exited = code;
      clearTimeout(timer);
      pipes = setTimeout(() => giveUp(`highwater exited (${code}) but its stdout/stderr stayed open ${PIPES_AFTER_EXIT_MS / 1000} s`), PIPES_AFTER_EXIT_MS);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(pipes);
      resolve({ code: exited === undefined ? code : exited, stdout, stderr, outDir, hung });
    });
  });
}

describe.skipIf(unavailable !== null)(`a pool whose one worker leaks${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  afterEach(() => cg?.remove());

  it.each(['spawn', 'fork'])(
    "%s: exit 53, the worker and its line named, every process's memory in one report",
    async (method) => {
      const made = makeCgroup(700 * MiB);
      if (typeof made === 'string') throw new Error(made);
      cg = made;
      const progress = join(freshDir('hw-mp-progress-'), 'progress');
      const r = await runInCgroup(made, [method], {
        PROGRESS: progress,
        READY_DIR: freshDir('hw-mp-ready-'),
        HOLD_MIB: '30',
        MAIN_MIB: '16',
        LEAK_STEP_MIB: '20',
      });
      expect(r.hung, r.hung).toBeUndefined();
      expect(r.code, r.stderr).toBe(53);

      // What the program really did: the leaker's pid and the blocks it held (the one in flight, if any, was refused).
      const [leakerText, blocksText] = readFileSync(progress, 'utf8').trim().split(' ');
      const leaker = Number(leakerText);
      const blocks = Number(blocksText);
      const block = 20 * MiB + 33; // b"x" * n: a bytes object of n bytes and its 33-byte header

      // One report, container-wide.
      const dirs = reportDirs(r.outDir);
      expect(dirs, r.stderr).toHaveLength(1);
      const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
      expect(rep.trigger).toBe('oom');
      const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
      // Usually the leaker trips the guard, but any process allocating when
      // memory runs short may (the parent's pool threads do): it is one of
      // the tracked processes; the line naming who holds the most is below.
      expect(procs.has(rep.container!.oomPid!), `oomPid ${rep.container!.oomPid}`).toBe(true);
      expect(procs.get(leaker)!.label).toMatch(new RegExp(`^worker \\d \\(${method === 'spawn' ? 'multiprocessing spawn' : 'fork'}\\)$`));

      // When it ran out: the leaker's line holds its blocks (±5 %), the holders theirs, the parent its own.
      const live = rep.oomStacks!;
      const leaked = atLine(live, leaker, LEAK);
      expect(leaked).toBeGreaterThan(200 * MiB);
      expect(
        [blocks, blocks + 1].some((k) => Math.abs(leaked - k * block) <= 0.05 * k * block),
        `${leaked} vs ${blocks} blocks`,
      ).toBe(true);
      const holders = [...procs.values()].filter((p) => atLine(live, p.pid, HOLD) > 0);
      expect(
        holders
          .map((p) => atLine(live, p.pid, HOLD))
          .sort((a, b) => a - b)
          .map((b) => Math.round(b / MiB)),
      ).toEqual([30, 60]);
      for (const p of holders) expectNear(atLine(live, p.pid, HOLD), Math.round(atLine(live, p.pid, HOLD) / (30 * MiB)) * 30 * MiB);
      const main = rep.process.pid;
      expectNear(atLine(live, main, MAIN), 16 * MiB);

      // stderr: the OOM line names the process holding the most and its line; then the report.
      const lines = r.stderr.split('\n');
      const head = lines.findIndex((l) => /^highwater: out of memory \(low-available\): .* in use by \d+ Python processes$/.test(l));
      expect(head, r.stderr).toBeGreaterThanOrEqual(0);
      expect(lines[head + 1]).toMatch(
        new RegExp(`^highwater:   pid ${leaker} \\(worker \\d\\)  [0-9.]+ MiB  at  pool_leak\\.py:${LEAK} leak  blocks\\.append`),
      );
      expect(r.stderr).toContain(`report written to ${join(dirs[0]!, 'index.html')}`);
      // Each process's own report stays available.
      expect(existsSync(join(dirs[0]!, procs.get(leaker)!.report!))).toBe(true);
      expect(readdirSync(join(dirs[0]!, 'processes')).length).toBeGreaterThanOrEqual(4);
    },
    120_000,
  );
});

describe.skipIf(unavailable !== null)(`detection disabled: the kernel's OOM killer${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  afterEach(() => cg?.remove());

  it('exit 137 and a post-mortem covering every process (the executor itself exits 1: BrokenProcessPool)', async () => {
    const made = makeCgroup(700 * MiB);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const progress = join(freshDir('hw-mp-progress-'), 'progress');
    const r = await runInCgroup(
      made,
      ['spawn', 'executor'],
      {
        PROGRESS: progress,
        // The leak starts once both holders hold: on a loaded machine a spawn worker can take longer than the leaker's 1 s head start.
        READY_DIR: freshDir('hw-mp-ready-'),
        HOLD_MIB: '30',
        MAIN_MIB: '16',
        LEAK_STEP_MIB: '20',
        KILL_ME_FIRST: '1',
        HOLD_SECONDS: '20',
      },
      ['--disable-oom-detection'],
    );
    expect(r.hung, r.hung).toBeUndefined();
    expect(r.code, r.stderr).toBe(137);
    expect(r.stderr).toContain('BrokenProcessPool');
    const [leakerText, blocksText] = readFileSync(progress, 'utf8').trim().split(' ');
    const leaker = Number(leakerText);
    const blocks = Number(blocksText);
    const block = 20 * MiB + 33;
    const dirs = reportDirs(r.outDir);
    expect(dirs, r.stderr).toHaveLength(1);
    const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.trigger).toBe('killed');
    // Every process's memory at its death, from its state file: the leaker's blocks (the one in flight may have been live).
    const live = rep.oomStacks!;
    const leaked = atLine(live, leaker, LEAK);
    expect(
      [blocks, blocks + 1].some((k) => Math.abs(leaked - k * block) <= 0.05 * k * block),
      `${leaked} vs ${blocks} blocks`,
    ).toBe(true);
    const holders = rep.processes!.filter((p) => atLine(live, p.pid, HOLD) > 0).map((p) => Math.round(atLine(live, p.pid, HOLD) / MiB));
    // On failure: every process as the report has it (which one lost its bytes, and from what source).
    const seen = JSON.stringify(rep.processes!.map((p) => ({ ...p, hold: atLine(live, p.pid, HOLD) })));
    expect(
      holders.sort((a, b) => a - b),
      seen,
    ).toEqual([30, 60]);
    // The program exited by itself (1, after its finalization freed its data): it is there, as it ended.
    expect(rep.processes!.find((p) => p.pid === rep.process.pid)!.state).toBe('exited');
    expect(r.stderr).toMatch(new RegExp(`highwater:   pid ${leaker} \\(worker \\d\\)  [0-9.]+ MiB  at  pool_leak\\.py:${LEAK} leak`));
  }, 120_000);
});
