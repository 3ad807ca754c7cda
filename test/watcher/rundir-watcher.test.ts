// RunDirWatcher, the one watcher of `highwater run` and `highwater watch`,
// driven directly: state files in a real run dir, a fake control socket, and
// a writable copy of a cgroup v1 fixture tree (pid 4242, limit 512 MiB,
// available ≈ 504 MiB) standing in for /proc and /sys.
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_MIN_AVAILABLE, MiB } from '../../sidecar/src/memory/heuristics.js';
import { readStateHeader } from '../../sidecar/src/watcher/state-header.js';
import { HEADER } from '../../sidecar/src/state/layout.js';
import { RunDirWatcher, type RunDirEvent, type RunDirWatcherOptions } from '../../sidecar/src/watcher/rundir-watcher.js';
import { buildStateFile } from '../report/state-writer.js';
import { bytesAtLine, fixtures } from '../helpers/cli.js';
import { fakeShim, removeDir, tempDir, type FakeShim } from './helpers.js';
import { startPython, watchLine, type Proc } from './processes.js';

const FX = join(import.meta.dirname, '../fixtures/cgroup');
const LIVE = 4242; // the fixture tree's process
const ARGV = ['python3', 'job.py'];
const DEAD = 2_999_993; // above the default pid_max: never a live process

/** A state file: 6 MiB at line 3 of the state fixture, with what the shim publishes. */
function state(pid: number, over: { floorBytes?: number; argv?: string[]; exitStatus?: number; oomReason?: number } = {}): Buffer {
  const buf = buildStateFile({
    pid,
    funcs: [{ file: join(fixtures, 'state', 'example.py'), name: '<module>' }],
    nodes: [{ parent: 0, func: 0, line: 3 }],
    snapshot: [0, 6 * MiB],
    live: [0, 6 * MiB],
    peakSource: 1,
    argv: over.argv ?? ARGV,
    updatedMs: Date.now(),
    floorBytes: over.floorBytes ?? 0,
    ...(over.oomReason !== undefined ? { oomReason: over.oomReason } : {}),
  });
  if (over.exitStatus !== undefined) buf.writeBigUInt64LE(BigInt(over.exitStatus), 224);
  return buf;
}

describe('RunDirWatcher', () => {
  let tree: string;
  let runDir: string;
  let out: string;
  let shim: FakeShim;
  let events: RunDirEvent[];
  let watcher: RunDirWatcher | undefined;

  const make = (over: Partial<RunDirWatcherOptions> & { oomDetection?: boolean; minAvailable?: object } = {}): RunDirWatcher => {
    const w = new RunDirWatcher({
      runDir,
      outputDir: out,
      config: { oomDetection: over.oomDetection ?? true, minAvailable: over.minAvailable ?? DEFAULT_MIN_AVAILABLE, pollIntervalMs: 20 },
      expectProcessWithinMs: 0,
      readOptions: { procRoot: join(tree, 'proc'), rootPrefix: tree },
      renderOptions: { timestampedSubdir: true },
      ...over,
    });
    w.on('event', (e) => events.push(e));
    watcher = w;
    return w;
  };
  const of = <T extends RunDirEvent['type']>(type: T) => events.filter((e): e is Extract<RunDirEvent, { type: T }> => e.type === type);
  const passes = async (w: RunDirWatcher, n: number) => {
    for (let i = 0; i < n; i++) await w.tick();
  };

  beforeEach(async () => {
    tree = tempDir('hw-tree-');
    cpSync(join(FX, 'v1/machine'), tree, { recursive: true });
    // The fixture process as the watcher's PID namespace shows it: running, with the state file's cmdline.
    writeFileSync(join(tree, 'proc', String(LIVE), 'stat'), `${LIVE} (python3) S 1 ${LIVE} ${LIVE} 0 -1\n`);
    writeFileSync(join(tree, 'proc', String(LIVE), 'cmdline'), ARGV.join('\0') + '\0');
    runDir = tempDir('hw-run-');
    out = tempDir('hw-out-');
    shim = await fakeShim(join(runDir, `hw-${LIVE}.sock`));
    events = [];
  });
  afterEach(async () => {
    await watcher?.stop();
    watcher = undefined;
    await shim.close();
    for (const d of [tree, runDir, out]) removeDir(d);
  });

  it('judges by the floor the shim published and never sends one of its own', async () => {
    // The shim's floor (520 MiB) is above the ≈ 504 MiB available; the watcher's own (100 MiB) is not.
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE, { floorBytes: 520 * MiB }));
    const w = make();
    await passes(w, 3);
    expect(shim.commands).toEqual(['oom low-available']);
    expect(of('floor-set')).toEqual([{ type: 'floor-set', pid: LIVE, floorBytes: 520 * MiB }]);
    expect(of('oom')).toMatchObject([{ pid: LIVE, reason: 'low-available' }]);
    expect(w.oomFired).toBe(true);
    expect(w.samples()).toMatchObject([{ pid: LIVE, floorBytes: 520 * MiB, peakBytes: 6 * MiB }]);
  });

  it('a process its shim is ending for OOM (oomReason in the header) is one oom-exit at once, before any dump, and gets no command', async () => {
    // The shim's floor (520 MiB) is above what is available: the watcher alone would send "oom low-available".
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE, { floorBytes: 520 * MiB, oomReason: 3 }));
    const w = make();
    await passes(w, 3);
    expect(of('oom-exit')).toEqual([{ type: 'oom-exit', pid: LIVE, reason: 'failed-allocation' }]);
    expect(of('oom')).toEqual([]);
    expect(of('report')).toEqual([]);
    expect(shim.commands).toEqual([]);
  });

  it('the metrics see a process once its readings were taken, never between the pass that found it and its first check', async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE));
    const w = make();
    let seenMidPass: unknown;
    w.on('event', (e) => {
      if (e.type === 'process-found') seenMidPass = w.samples(); // right after its header was read
    });
    await w.tick();
    expect(seenMidPass).toEqual([]);
    expect(w.samples()).toMatchObject([{ pid: LIVE, peakBytes: 6 * MiB, availableBytes: expect.any(Number) }]);
    expect(w.samples()[0]!.availableBytes).toBeGreaterThan(0);
  });

  it("a lower floor from the shim wins over the watcher's --min-available", async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE, { floorBytes: 1 * MiB }));
    const w = make({ minAvailable: { bytes: 520 * MiB } });
    await passes(w, 3);
    expect(shim.commands).toEqual([]);
    expect(w.oomFired).toBe(false);
  });

  it("before the shim published a floor: the watcher's own, from --min-available over its readings", async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE, { floorBytes: 0 }));
    const w = make({ minAvailable: { bytes: 520 * MiB } });
    await passes(w, 3);
    expect(shim.commands).toEqual(['oom low-available']);
    expect(of('floor-set')).toEqual([]);
    expect(w.samples()[0]!.floorBytes).toBeUndefined();
  });

  it('detection disabled: no command at all, whatever the floor', async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE, { floorBytes: 520 * MiB }));
    const w = make({ oomDetection: false });
    await passes(w, 3);
    expect(shim.commands).toEqual([]);
    expect(w.oomFired).toBe(false);
  });

  it('many processes in one run dir: the live one is tracked, each ended one gets its own post-mortem', async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE));
    writeFileSync(join(runDir, `hw-${DEAD}.state`), state(DEAD));
    writeFileSync(join(runDir, `hw-${DEAD + 1}.state`), state(DEAD + 1, { exitStatus: 0x100 + 53 }));
    const w = make();
    await passes(w, 2);
    await w.stop();
    const reports = of('report');
    expect(reports.map((r) => [r.pid, r.report.trigger, r.postMortem]).sort()).toEqual([
      [DEAD, 'killed', true],
      [DEAD + 1, 'oom', true],
    ]);
    for (const r of reports) expect(r.report.stacks[0]!.bytes).toBe(6 * MiB);
    expect(
      of('process-found')
        .map((e) => e.pid)
        .sort(),
    ).toEqual([DEAD, DEAD + 1, LIVE].sort());
    expect(
      of('process-gone')
        .map((e) => e.pid)
        .sort(),
    ).toEqual([DEAD, DEAD + 1]);
    // The ended processes' files are gone; the live one's stays, and it was asked for a dump on stop.
    expect(readdirSync(runDir).sort()).toEqual([`hw-${LIVE}.sock`, `hw-${LIVE}.state`]);
    expect(shim.commands).toEqual(['dump']);
  });

  // The process writes its last words and ends between this pass's header
  // read and its aliveness check (the 'process-found' listener runs right
  // after the read): the post-mortem rule must judge the header it left.
  const endsRightAfterTheRead = (w: RunDirWatcher, lastWords: { tracking?: 0; exitStatus?: number }) =>
    w.on('event', (e) => {
      if (e.type !== 'process-found' || e.pid !== LIVE) return;
      const fd = openSync(join(runDir, `hw-${LIVE}.state`), 'r+');
      if (lastWords.tracking !== undefined) writeSync(fd, Buffer.alloc(8), 0, 8, HEADER.tracking);
      if (lastWords.exitStatus !== undefined) {
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt(lastWords.exitStatus));
        writeSync(fd, b, 0, 8, HEADER.exitStatus);
      }
      closeSync(fd);
      rmSync(join(tree, 'proc', String(LIVE)), { recursive: true });
    });

  it("under highwater python, a call's child that stopped tracking as it ended gets no post-mortem (CI: a forkserver's stale `tracking` made one)", async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE));
    const w = make({ apiMode: true, dumpOnStop: false });
    endsRightAfterTheRead(w, { tracking: 0 });
    await passes(w, 2);
    await w.stop();
    expect(of('process-gone').map((e) => e.pid)).toEqual([LIVE]);
    expect(of('report')).toEqual([]);
    expect(existsSync(join(runDir, `hw-${LIVE}.state`))).toBe(false); // retired: nothing to report
  });

  it("the shim's exit status 53, written as the process ended, makes its post-mortem `oom`, not `killed`", async () => {
    writeFileSync(join(runDir, `hw-${LIVE}.state`), state(LIVE));
    const w = make({ dumpOnStop: false });
    endsRightAfterTheRead(w, { exitStatus: 0x100 + 53 });
    await passes(w, 2);
    await w.stop();
    expect(of('report').map((r) => [r.pid, r.report.trigger, r.postMortem])).toEqual([[LIVE, 'oom', true]]);
  });

  it("the owner's child: its post-mortem waits for its wait status, and the trigger comes from it", async () => {
    writeFileSync(join(runDir, `hw-${DEAD}.state`), state(DEAD));
    const w = make({ ownsRunDir: true, dumpOnStop: false });
    w.watchChild(DEAD);
    await passes(w, 3);
    expect(of('process-gone')).toEqual([]); // gone from /proc, but its status is not known yet
    w.childEnded(DEAD, { code: null, signal: 'SIGTERM' });
    await w.tick();
    await w.stop();
    expect(of('report').map((r) => [r.pid, r.report.trigger])).toEqual([[DEAD, 'signal']]);
  });

  it('in a run dir of its own, a state file that never became readable gets its attempt at stop, and its raw data is kept', async () => {
    const bad = Buffer.alloc(8192);
    bad.write('HWSTATE1', 0, 'latin1');
    bad.writeUInt32LE(9, 8); // a version this watcher does not know
    writeFileSync(join(runDir, `hw-${DEAD}.state`), bad);
    const w = make({ ownsRunDir: true, dumpOnStop: false });
    await passes(w, 2);
    expect(of('report-failed')).toEqual([]); // not while running: it may still be being written
    await w.stop();
    expect(of('report-failed')).toMatchObject([
      { pid: DEAD, from: join(runDir, `hw-${DEAD}.state`), code: 'HW_ERR_STATE_INVALID', kept: join(out, `hw-${DEAD}.state`) },
    ]);
    expect(existsSync(join(out, `hw-${DEAD}.state`))).toBe(true);
  });

  it('a run dir shared with others (watch) leaves a not-yet-readable state file alone', async () => {
    const bad = Buffer.alloc(8192);
    bad.write('HWSTATE1', 0, 'latin1');
    bad.writeUInt32LE(9, 8);
    writeFileSync(join(runDir, `hw-${DEAD}.state`), bad);
    const w = make();
    await passes(w, 2);
    await w.stop();
    expect(of('report-failed')).toEqual([]);
    expect(of('report')).toEqual([]);
  });

  it('a dump is rendered once, in order, then removed; a .dump.tmp is never read', async () => {
    mkdirSync(join(runDir, 'x'));
    cpSync(join(fixtures, 'dumps', 'example.dump'), join(runDir, 'hw-77-2.dump'));
    cpSync(join(fixtures, 'dumps', 'example.dump'), join(runDir, 'hw-77-1.dump'));
    writeFileSync(join(runDir, 'hw-77-3.dump.tmp'), '{"half": ');
    const w = make();
    await passes(w, 4);
    await w.stop();
    const reports = of('report');
    expect(reports.map((r) => r.from)).toEqual([join(runDir, 'hw-77-1.dump'), join(runDir, 'hw-77-2.dump')]);
    expect(reports.every((r) => !r.postMortem && r.pid === 77)).toBe(true);
    expect(of('report-failed')).toEqual([]);
    expect(readdirSync(runDir).sort()).toEqual([`hw-${LIVE}.sock`, 'hw-77-3.dump.tmp', 'x']); // the socket is the fake shim's
  });
});

describe('RunDirWatcher on a real shim', () => {
  let proc: Proc | undefined;
  afterEach(() => {
    if (proc && proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  });

  it('reads the floor the real shim publishes, and renders the post-mortem of a kill -9 at the real line', async () => {
    const runDir = tempDir('hw-run-');
    const out = tempDir('hw-out-');
    const events: RunDirEvent[] = [];
    const w = new RunDirWatcher({
      runDir,
      outputDir: out,
      config: { oomDetection: true, minAvailable: DEFAULT_MIN_AVAILABLE, pollIntervalMs: 50 },
      expectProcessWithinMs: 0,
    });
    w.on('event', (e) => events.push(e));
    try {
      proc = startPython(runDir, { STEPS: '3', STEP_MIB: '4', HOLD_SECONDS: '60' });
      await proc.waitFor('ready');
      const pid = proc.child.pid!;
      w.start();
      const end = Date.now() + 20_000;
      while (!events.some((e) => e.type === 'floor-set') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const published = readStateHeader(join(runDir, `hw-${pid}.state`));
      if (!published || 'problem' in published) throw new Error('no readable state file');
      expect(published.header.floorBytes).toBeGreaterThanOrEqual(100 * MiB);
      expect(events.find((e) => e.type === 'floor-set')).toEqual({ type: 'floor-set', pid, floorBytes: published.header.floorBytes });
      expect(w.samples()).toMatchObject([{ pid, floorBytes: published.header.floorBytes }]);

      proc.child.kill('SIGKILL');
      await proc.exited;
      while (!events.some((e) => e.type === 'report') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      await w.stop();
      const report = events.find((e) => e.type === 'report');
      expect(report).toMatchObject({ pid, postMortem: true, report: { trigger: 'killed' } });
      const r = (report as Extract<RunDirEvent, { type: 'report' }>).report;
      expect(bytesAtLine(r, 'hold.py', watchLine)).toBe(3 * (4 * MiB + 1)); // bytearray(n) allocates n + 1 bytes
    } finally {
      await w.stop();
      removeDir(runDir);
      removeDir(out);
    }
  }, 60_000);
});
