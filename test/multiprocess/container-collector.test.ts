/**
 * The watcher's container-wide collector (watcher/container.ts) on state
 * files written by the test writer: the container peak is the pass whose sum
 * was highest, with each process's stacks at that pass; ended processes are
 * resolved, then kept or folded; the run dir holds only running processes.
 */
import { mkdtempSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { ContainerCollector, KEEP_ENDED, KEEP_KILLED, processBytes } from '../../sidecar/src/watcher/container.js';
import { readStateHeader, type StateHeader } from '../../sidecar/src/watcher/state-header.js';
import { renderReport } from '../../sidecar/src/report/render.js';
import { buildStateFile, type StateSpec } from '../report/state-writer.js';
import { HEADER } from '../../sidecar/src/state/layout.js';

const MiB = 1024 * 1024;
const SPAWN = ['python3', '-c', 'from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)', '--multiprocessing-fork'];

/** A process whose one line (`train.py:<line>` in `fn`) holds `bytes` now and held `peak` at its own peak. */
function spec(pid: number, argv: string[], line: number, bytes: number, peak = bytes): StateSpec {
  return {
    pid,
    argv,
    funcs: [
      { file: '/app/train.py', name: '<module>' },
      { file: '/app/train.py', name: `fn${line}` },
    ],
    nodes: [
      { parent: 0, func: 0, line: 1 },
      { parent: 1, func: 1, line },
    ],
    live: [0, 0, bytes],
    snapshot: [0, 0, peak],
    peakBytes: peak,
    peakSource: 0,
    cwd: '/nonexistent',
  };
}

function write(dir: string, s: StateSpec): { pid: number; ino: number; statePath: string; header: StateHeader; local: boolean } {
  const statePath = join(dir, `hw-${s.pid}.state`);
  writeFileSync(statePath, buildStateFile(s));
  const read = readStateHeader(statePath);
  if (!read || 'problem' in read) throw new Error('unreadable test state file');
  return { pid: s.pid!, ino: statSync(statePath).ino, statePath, header: read.header, local: false };
}

describe('ContainerCollector', () => {
  test('the peak is the pass with the highest sum; each process contributes its stacks of that pass', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-coll-'));
    const c = new ContainerCollector({ runDir: dir, topPid: 10 });
    // Pass 1: program 50 MiB, worker 100 MiB (sum 150).
    c.observe([write(dir, spec(10, ['python3', 'train.py'], 5, 50 * MiB)), write(dir, spec(11, SPAWN, 7, 100 * MiB))]);
    expect(c.active).toBe(true);
    // Pass 2: program 20, worker 300 (sum 320): the peak.
    c.observe([write(dir, spec(10, ['python3', 'train.py'], 5, 20 * MiB, 50 * MiB)), write(dir, spec(11, SPAWN, 7, 300 * MiB))]);
    // Pass 3: program 200, worker 10 (sum 210), though each own peak is higher elsewhere.
    const p = write(dir, spec(10, ['python3', 'train.py'], 5, 200 * MiB));
    const w = write(dir, spec(11, SPAWN, 7, 10 * MiB, 300 * MiB));
    c.observe([p, w]);
    await c.ended(11, w.ino, w.statePath, false);

    const data = await c.build();
    const { report } = await renderReport(data, mkdtempSync(join(tmpdir(), 'hw-coll-out-')), { timestampedSubdir: false });
    expect(report.peakBytes).toBe(320 * MiB);
    expect(processBytes(report, 10)).toBe(20 * MiB);
    expect(processBytes(report, 11)).toBe(300 * MiB);
    expect(report.container!.peakSource).toBe('sampled');
    const worker = report.processes!.find((x) => x.pid === 11)!;
    expect(worker).toMatchObject({ label: 'worker 1 (multiprocessing spawn)', ownPeakBytes: 300 * MiB, bytesAtPeak: 300 * MiB, state: 'exited' });
    expect(report.stacks[0]!.frames.map((f) => f.function)).toEqual(['pid 11: worker 1 (multiprocessing spawn)', '<module>', 'fn7']);
    expect(report.stacks[0]!.frames[2]!.line).toBe(7);
  });

  test('a recycling pool: ended workers beyond the kept ones are folded, their count and largest peak stay', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-coll-'));
    const c = new ContainerCollector({ runDir: dir, topPid: 10 });
    const top = () => write(dir, spec(10, ['python3', 'train.py'], 5, 10 * MiB));
    const n = KEEP_ENDED + 12;
    for (let i = 0; i < n; i++) {
      const w = write(dir, spec(100 + i, SPAWN, 7, (i + 1) * MiB));
      c.observe([top(), w]);
      await c.ended(w.pid, w.ino, w.statePath, false);
    }
    const data = await c.build();
    // The program, the worker in the peak sample (the last, largest), and KEEP_ENDED largest own peaks (it among them).
    expect(data.processes!.length).toBe(1 + KEEP_ENDED);
    expect(data.container!.processCount).toBe(n + 1);
    expect(data.container!.foldedProcesses).toBe(n - KEEP_ENDED);
    expect(data.container!.foldedPeakBytes).toBe((n - KEEP_ENDED) * MiB);
    expect(data.peakBytes).toBe(10 * MiB + n * MiB);
  });

  test("the kernel's victims stay listed, though the survivors stopped after them had larger peaks", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-coll-'));
    const c = new ContainerCollector({ runDir: dir, topPid: 10 });
    const top = () => write(dir, spec(10, ['python3', 'train.py'], 5, 10 * MiB));
    // Twelve workers reached 16 MiB and were stopped (exited); four were
    // killed at 2 MiB, still growing.
    for (let i = 0; i < 12; i++) {
      const w = write(dir, spec(100 + i, SPAWN, 7, 16 * MiB));
      c.observe([top(), w]);
      await c.ended(w.pid, w.ino, w.statePath, false);
    }
    for (let i = 0; i < 4; i++) {
      const w = write(dir, spec(200 + i, SPAWN, 7, 2 * MiB));
      c.observe([top(), w]);
      await c.ended(w.pid, w.ino, w.statePath, true);
    }
    const data = await c.build({ trigger: 'killed' });
    const listed = new Map(data.processes!.map((x) => [x.pid, x.state]));
    expect([200, 201, 202, 203].map((pid) => listed.get(pid))).toEqual(['killed', 'killed', 'killed', 'killed']);
    expect(data.processes!.length).toBe(1 + KEEP_ENDED + 4);
    // Bounded: a pool whose workers are killed again and again keeps KEEP_KILLED of them.
    for (let i = 0; i < KEEP_KILLED + 5; i++) {
      const w = write(dir, spec(300 + i, SPAWN, 7, MiB));
      c.observe([top(), w]);
      await c.ended(w.pid, w.ino, w.statePath, true);
    }
    const more = await c.build({ trigger: 'killed' });
    expect(more.processes!.filter((x) => x.state === 'killed').length).toBe(KEEP_KILLED);
  });

  test('post-mortem: a process that died without a dump shows what it held when it died', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-coll-'));
    const c = new ContainerCollector({ runDir: dir, topPid: 10 });
    c.observe([write(dir, spec(10, ['python3', 'train.py'], 5, 10 * MiB)), write(dir, spec(11, SPAWN, 7, 100 * MiB))]);
    // It grew to 700 MiB after the last pass, then SIGKILL: its live area says so.
    const w = write(dir, spec(11, SPAWN, 7, 700 * MiB));
    const p = write(dir, spec(10, ['python3', 'train.py'], 5, 10 * MiB));
    await c.ended(11, w.ino, w.statePath, true);
    await c.ended(10, p.ino, p.statePath, true);
    const data = await c.build({ trigger: 'killed' });
    expect(data.trigger).toBe('killed');
    const live = data.processes!.map((x) => [x.pid, x.liveBytes, x.state]);
    expect(live).toEqual([
      [10, 10 * MiB, 'killed'],
      [11, 700 * MiB, 'killed'],
    ]);
  });
});

describe('ContainerCollector under watch (no owner)', () => {
  test("the report's program is the tree's root process, not the first child seen", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-coll-'));
    const c = new ContainerCollector({ runDir: dir });
    /** Its state file with the origin the shim writes (docs/protocol.md "State file"): 1 root, 2 exec'd child. */
    const withOrigin = (s: StateSpec, origin: bigint) => {
      const statePath = join(dir, `hw-${s.pid}.state`);
      const buf = buildStateFile(s);
      buf.writeBigUInt64LE(origin, HEADER.origin);
      writeFileSync(statePath, buf);
      const read = readStateHeader(statePath);
      if (!read || 'problem' in read) throw new Error('unreadable test state file');
      return { pid: s.pid!, ino: statSync(statePath).ino, statePath, header: read.header, local: false };
    };
    const tracker = ['python3', '-c', 'from multiprocessing.resource_tracker import main;main(6)'];
    // A watcher started with the job: the resource tracker's file is listed before the program's.
    c.observe([withOrigin(spec(20, tracker, 3, 1 * MiB), 2n), withOrigin(spec(10, ['python3', 'train.py'], 5, 50 * MiB), 1n)]);
    const data = await c.build();
    expect(data.process.pid).toBe(10);
    expect(data.process.argv).toEqual(['python3', 'train.py']);
  });
});
