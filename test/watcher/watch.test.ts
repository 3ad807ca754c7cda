import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_MIN_AVAILABLE, MiB } from '../../sidecar/src/memory/heuristics.js';
import { Watcher, type WatcherEvent } from '../../sidecar/src/watcher/watch.js';
import { deadSocket, fakeShim, removeDir, tempDir, type FakeShim } from './helpers.js';

const FX = join(import.meta.dirname, '../fixtures/cgroup');
const V1_LEAF = 'sys/fs/cgroup/memory/process_api/7774752cf54730c6c630e0be0dce44ee';

describe('Watcher', () => {
  let tree: string; // a writable copy of the v1 fixture tree (pid 4242, limit 512 MiB)
  let runDir: string;
  let shim: FakeShim;
  let events: WatcherEvent[];
  let watcher: Watcher | undefined;

  const make = (over: { oomDetection?: boolean; minAvailable?: object; pid?: number; tree?: string } = {}) => {
    const root = over.tree ?? tree;
    const w = new Watcher({
      pid: over.pid ?? 4242,
      runDir,
      config: { oomDetection: over.oomDetection ?? true, minAvailable: over.minAvailable ?? DEFAULT_MIN_AVAILABLE, pollIntervalMs: 100 },
      readOptions: { procRoot: join(root, 'proc'), rootPrefix: root },
    });
    w.on('event', (e) => events.push(e));
    watcher = w;
    return w;
  };
  const types = () => events.map((e) => e.type);

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    tree = tempDir('hw-tree-');
    cpSync(join(FX, 'v1/machine'), tree, { recursive: true });
    runDir = tempDir('hw-run-');
    shim = await fakeShim(join(runDir, 'hw-4242.sock'));
    events = [];
  });
  afterEach(async () => {
    await watcher?.stop();
    watcher = undefined;
    await shim.close();
    vi.useRealTimers();
    removeDir(tree);
    removeDir(runDir);
  });

  it('sends the floor once at start, again only when it changes', async () => {
    const w = make();
    w.start();
    await vi.waitFor(() => expect(shim.commands).toEqual([`floor ${100 * MiB}`]));
    await vi.advanceTimersByTimeAsync(500);
    expect(shim.commands).toEqual([`floor ${100 * MiB}`]);
    // the limit is raised at run time: 2 % of 10 GiB is larger than 100 MiB
    writeFileSync(join(tree, V1_LEAF, 'memory.limit_in_bytes'), String(10 * 1024 * MiB));
    await vi.advanceTimersByTimeAsync(100);
    const floor2 = Math.floor((10 * 1024 * MiB * 2) / 100);
    await vi.waitFor(() => expect(shim.commands).toEqual([`floor ${100 * MiB}`, `floor ${floor2}`]));
    expect(events.filter((e) => e.type === 'floor-set').map((e) => (e as { floorBytes: number }).floorBytes)).toEqual([
      100 * MiB,
      floor2,
    ]);
    expect(w.oomFired).toBe(false);
  });

  it('start() is idempotent, stop() is tolerant', async () => {
    const w = make();
    await w.stop(); // before start
    w.start();
    w.start();
    await vi.waitFor(() => expect(shim.commands).toHaveLength(1));
    expect(types().filter((t) => t === 'started')).toHaveLength(1);
    await w.stop();
    await w.stop();
    expect(types().filter((t) => t === 'stopped')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(shim.commands).toHaveLength(1);
  });

  it('polls every pollIntervalMs', async () => {
    const w = make();
    w.start();
    await vi.waitFor(() => expect(types().filter((t) => t === 'readings')).toHaveLength(1));
    await vi.advanceTimersByTimeAsync(300);
    await vi.waitFor(() => expect(types().filter((t) => t === 'readings')).toHaveLength(4));
  });

  it('low available memory: sends "oom low-available" once', async () => {
    const w = make({ minAvailable: { bytes: 520 * MiB } });
    w.start();
    await vi.waitFor(() => expect(shim.commands).toEqual([`floor ${520 * MiB}`, 'oom low-available']));
    await vi.advanceTimersByTimeAsync(1000);
    expect(shim.commands.filter((c) => c.startsWith('oom'))).toHaveLength(1);
    expect(w.oomFired).toBe(true);
    const oom = events.find((e) => e.type === 'oom');
    expect(oom).toMatchObject({ reason: 'low-available', floorBytes: 520 * MiB, readings: { source: 'cgroup-v1' } });
    expect(events.find((e) => e.type === 'oom-sent')).toMatchObject({ answer: 'ok /run/hw-4242-1.dump' });
    expect(w.oomEvent?.reason).toBe('low-available');
  });

  it('swap rule', async () => {
    // memsw − usage = 500 MiB of swap; available ≈ 504 MiB; use a 1-byte floor so only the swap rule fires
    const usage = Number(13881344);
    writeFileSync(join(tree, V1_LEAF, 'memory.memsw.usage_in_bytes'), String(usage + 510 * MiB));
    const w = make({ minAvailable: { bytes: 1 } });
    w.start();
    await vi.waitFor(() => expect(shim.commands).toContain('oom swap'));
  });

  it('detection disabled: floor 0, never oom', async () => {
    const w = make({ oomDetection: false, minAvailable: { bytes: 520 * MiB } });
    w.start();
    await vi.advanceTimersByTimeAsync(500);
    await vi.waitFor(() => expect(shim.commands).toEqual(['floor 0']));
    expect(w.oomFired).toBe(false);
  });

  it('no socket yet: no oom fired; a socket that appears later gets the floor', async () => {
    await shim.close();
    const w = make({ minAvailable: { bytes: 520 * MiB } });
    w.start();
    await vi.advanceTimersByTimeAsync(300);
    expect(w.oomFired).toBe(false);
    shim = await fakeShim(join(runDir, 'hw-4242.sock'));
    await vi.advanceTimersByTimeAsync(100);
    await vi.waitFor(() => expect(shim.commands).toEqual([`floor ${520 * MiB}`, 'oom low-available']));
  });

  it('a dead socket: one control-failed event, the watcher goes on', async () => {
    deadSocket(join(runDir, 'hw-999.sock')); // stale: nobody listens
    const w = make();
    w.start();
    await vi.waitFor(() => expect(shim.commands).toHaveLength(1));
    await vi.advanceTimersByTimeAsync(500);
    const failed = events.filter((e) => e.type === 'control-failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ socket: join(runDir, 'hw-999.sock'), command: `floor ${100 * MiB}` });
  });

  it('the tracked process is gone: no readings, no commands', async () => {
    const w = make({ pid: 31337 });
    w.start();
    await vi.advanceTimersByTimeAsync(500);
    expect(types()).toEqual(['started']);
    expect(shim.commands).toEqual([]);
  });

  it('unreadable readings: one reading-failed event', async () => {
    const broken = tempDir('hw-broken-');
    cpSync(join(FX, 'broken/no-meminfo'), broken, { recursive: true });
    try {
      const w = make({ pid: 77, tree: broken });
      w.start();
      await vi.advanceTimersByTimeAsync(500);
      expect(types().filter((t) => t === 'reading-failed')).toHaveLength(1);
      expect(shim.commands).toEqual([]);
    } finally {
      removeDir(broken);
    }
  });

  it('degraded cgroup readings warn once through the logger', async () => {
    const broken = tempDir('hw-broken-');
    cpSync(join(FX, 'broken/garbage'), broken, { recursive: true });
    const warnings: string[] = [];
    try {
      const w = new Watcher({
        pid: 77,
        runDir,
        config: { oomDetection: true, minAvailable: DEFAULT_MIN_AVAILABLE, pollIntervalMs: 100 },
        readOptions: { procRoot: join(broken, 'proc'), rootPrefix: broken, logger: { warn: (_o, m) => void warnings.push(m) } },
      });
      watcher = w;
      w.start();
      await vi.advanceTimersByTimeAsync(500);
      await vi.waitFor(() => expect(shim.commands).toHaveLength(1));
      expect(warnings).toHaveLength(1);
    } finally {
      removeDir(broken);
    }
  });
});
