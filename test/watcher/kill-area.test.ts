/**
 * The `kill` area of a state file (docs/protocol.md "State file", killMs /
 * killBytes / kill offset): what a process held when it saw the kernel's OOM
 * kill. The watcher's container collector uses it for a `killed` report's
 * process that outlived the kill, and must survive a hostile one (the file
 * is another party's): an offset past the end, into the header, a huge
 * node count, an area without killMs (not yet published) all fall back to
 * the live area, never throw, never read beyond the file.
 */
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { HEADER, NODE_BYTES_RECORD } from '../../sidecar/src/state/layout.js';
import { readStateArea } from '../../sidecar/src/watcher/live-sample.js';
import { parseProcessFacts } from '../../sidecar/src/watcher/process-facts.js';
import { ContainerCollector } from '../../sidecar/src/watcher/container.js';
import { readStateHeader } from '../../sidecar/src/watcher/state-header.js';
import { buildStateFile, type StateSpec } from '../report/state-writer.js';

const MiB = 1024 * 1024;
const SPAWN = ['python3', '-c', 'from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)', '--multiprocessing-fork'];

/** A process whose line `line` holds `live` now. */
function spec(pid: number, argv: string[], line: number, live: number): StateSpec {
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
    live: [0, 0, live],
    snapshot: [0, 0, live],
    peakSource: 0,
    cwd: '/nonexistent',
  };
}

interface KillArea {
  /** Bytes per node (node 0 first). */
  bytes?: number[];
  killMs?: number;
  /** Override the offset written in the header (hostile files). */
  offset?: number;
  /** Override nodeCount (hostile files). */
  nodeCount?: bigint;
}

/** The state file with a `kill` area appended after the writer's areas, as the shim lays it out. */
function withKill(s: StateSpec, k: KillArea): Buffer {
  const base = buildStateFile(s);
  const bytes = k.bytes ?? [];
  const area = Buffer.alloc(Math.max(bytes.length, 3) * NODE_BYTES_RECORD);
  bytes.forEach((v, i) => area.writeBigInt64LE(BigInt(v), i * NODE_BYTES_RECORD));
  const buf = Buffer.concat([base, area]);
  buf.writeBigUInt64LE(BigInt(k.offset ?? base.length), HEADER.killOffset);
  buf.writeBigUInt64LE(BigInt(k.killMs ?? 0), HEADER.killMs);
  buf.writeBigInt64LE(BigInt(bytes.reduce((a, b) => a + b, 0)), HEADER.killBytes);
  if (k.nodeCount !== undefined) buf.writeBigUInt64LE(k.nodeCount, HEADER.nodeCount);
  return buf;
}

function put(dir: string, pid: number, buf: Buffer) {
  const statePath = join(dir, `hw-${pid}.state`);
  writeFileSync(statePath, buf);
  const read = readStateHeader(statePath);
  if (!read || 'problem' in read) throw new Error('unreadable test state file');
  return { pid, ino: statSync(statePath).ino, statePath, header: read.header, local: false };
}

/** A killed report of a program (pid 10) and a worker (pid 11) that outlived the kill, its file as given; the leaker (12) SIGKILLed. */
async function killedReport(worker: Buffer) {
  const dir = mkdtempSync(join(tmpdir(), 'hw-kill-area-'));
  const c = new ContainerCollector({ runDir: dir, topPid: 10 });
  const p = put(dir, 10, buildStateFile(spec(10, ['python3', 'train.py'], 5, 10 * MiB)));
  const w = put(dir, 11, worker);
  const l = put(dir, 12, buildStateFile(spec(12, SPAWN, 9, 300 * MiB)));
  c.observe([p, w, l]);
  await c.ended(12, l.ino, l.statePath, true);
  await c.ended(11, w.ino, w.statePath, true);
  const data = await c.build({ trigger: 'killed' });
  return new Map(data.processes!.map((x) => [x.pid, x]));
}

describe('the kill area', () => {
  test('parseProcessFacts reads killMs and killBytes; an older shim (zeros) says no kill seen', () => {
    const buf = withKill(spec(11, SPAWN, 7, 0), { bytes: [0, 0, 80 * MiB], killMs: 1764035000123 });
    const f = parseProcessFacts(buf.subarray(0, 4096));
    expect(f.killMs).toBe(1764035000123);
    expect(f.killBytes).toBe(80 * MiB);
    const old = parseProcessFacts(buildStateFile(spec(11, SPAWN, 7, 0)).subarray(0, 4096));
    expect([old.killMs, old.killBytes]).toEqual([0, 0]);
  });

  test('a process that freed its memory after the kill shows what it held at the kill, from its kill area', async () => {
    const procs = await killedReport(withKill(spec(11, SPAWN, 7, 0), { bytes: [0, 0, 80 * MiB], killMs: 1764035000123 }));
    expect(procs.get(11)).toMatchObject({ liveBytes: 80 * MiB, liveSource: 'kill' });
    // The SIGKILLed leaker and the program without a kill area: their live area at their end.
    expect(procs.get(12)).toMatchObject({ liveBytes: 300 * MiB, liveSource: 'state', state: 'killed' });
    expect(procs.get(10)).toMatchObject({ liveBytes: 10 * MiB, liveSource: 'state' });
  });

  test.each<[string, KillArea]>([
    ['an area not yet published (killMs 0)', { bytes: [0, 0, 80 * MiB], killMs: 0 }],
    ['an offset past the end of the file', { bytes: [0, 0, 80 * MiB], killMs: 1, offset: 1 << 30 }],
    ['an offset into the header', { bytes: [0, 0, 80 * MiB], killMs: 1, offset: 64 }],
    ['no area (offset 0)', { bytes: [0, 0, 80 * MiB], killMs: 1, offset: 0 }],
    ['a node count beyond any real program', { bytes: [0, 0, 80 * MiB], killMs: 1, nodeCount: 1n << 40n }],
  ])('hostile: %s is not used', async (_name, k) => {
    const buf = withKill(spec(11, SPAWN, 7, 5 * MiB), k);
    // The reader itself: no bytes from such an area.
    const dir = mkdtempSync(join(tmpdir(), 'hw-kill-area-'));
    const path = join(dir, 'hw-11.state');
    writeFileSync(path, buf);
    const read = readStateArea(path, 'kill');
    const usable = read?.bytes !== undefined && parseProcessFacts(read.header).killMs !== 0;
    expect(usable).toBe(false);
    if (k.nodeCount !== undefined) return; // the whole file is unreadable as a state: the collector's own checks
    const procs = await killedReport(buf);
    expect(procs.get(11)).toMatchObject({ liveBytes: 5 * MiB, liveSource: 'state' });
  });

  test('a report that is not `killed` ignores the kill area', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-kill-area-'));
    const c = new ContainerCollector({ runDir: dir, topPid: 10 });
    const w = put(dir, 11, withKill(spec(11, SPAWN, 7, 5 * MiB), { bytes: [0, 0, 80 * MiB], killMs: 1 }));
    c.observe([put(dir, 10, buildStateFile(spec(10, ['python3', 'train.py'], 5, 10 * MiB))), w]);
    const data = await c.build({ trigger: 'exit' });
    expect(data.processes!.find((x) => x.pid === 11)).toMatchObject({ liveBytes: null, liveSource: null });
  });
});
