/**
 * Test helper: builds state-file buffers per docs/protocol.md "State file",
 * so the reader can be tested without the C shim. Offsets and record sizes
 * come from the one layout module, which test/state/layout.test.ts checks
 * against the doc.
 */
import {
  AREA_RECORD,
  FUNC_RECORD,
  HEADER,
  HEADER_TEXT,
  NODE_BYTES_RECORD,
  NODE_RECORD,
  READING_FIELDS,
  readingOffset,
  STATE_HEADER_SIZE,
  STATE_MAGIC,
  STATE_VERSION,
} from '../../sidecar/src/state/layout.js';

export interface StateSpec {
  pid?: number;
  funcs: Array<{ file: string; name: string }>;
  /** Node 0 (the root) is implicit; these are nodes 1.. in order. */
  nodes: Array<{ parent: number; func: number; line: number }>;
  /** Per node including the root (index 0); missing entries are 0. */
  live?: number[];
  snapshot?: number[];
  peakSource?: 0 | 1;
  peakBytes?: number;
  currentBytes?: number;
  python?: string;
  argv?: string[];
  cwd?: string;
  updatedMs?: number;
  floorBytes?: number;
  /** In READING_FIELDS order: limit, usage, inactiveFile, workingSet, hostAvailable, available, swap */
  readings?: [number, number, number, number, number, number, number];
  readingsSource?: number;
  oomReason?: number;
  /** Extra room beyond what is used, as a live shim leaves it. */
  spareCapacity?: number;
}

export function buildStateFile(spec: StateSpec): Buffer {
  const spare = spec.spareCapacity ?? 4;
  const nodeCapacity = spec.nodes.length + 1 + spare;
  const funcCapacity = spec.funcs.length + spare;
  const strings: Buffer[] = [];
  let stringLen = 0;
  const addString = (s: string): [number, number] => {
    const b = Buffer.from(s, 'utf8');
    strings.push(b);
    stringLen += b.length;
    return [stringLen - b.length, b.length];
  };
  const funcRecords = spec.funcs.map((f) => [...addString(f.file), ...addString(f.name)]);
  const stringCapacity = stringLen + 64;

  const funcsOff = STATE_HEADER_SIZE;
  const nodesOff = funcsOff + funcCapacity * AREA_RECORD.funcsOffset;
  const stringsOff = nodesOff + nodeCapacity * AREA_RECORD.nodesOffset;
  const liveOff = Math.ceil((stringsOff + stringCapacity) / NODE_BYTES_RECORD) * NODE_BYTES_RECORD;
  const snapshotOff = liveOff + nodeCapacity * AREA_RECORD.liveOffset;
  const buf = Buffer.alloc(snapshotOff + nodeCapacity * AREA_RECORD.snapshotOffset);

  buf.write(STATE_MAGIC, HEADER.magic, 'latin1');
  buf.writeUInt32LE(STATE_VERSION, HEADER.version);
  buf.writeUInt32LE(STATE_HEADER_SIZE, HEADER.headerSize);
  const live = spec.live ?? [];
  const snapshot = spec.snapshot ?? [];
  const peakSource = spec.peakSource ?? 0;
  const peakSum = (peakSource === 1 ? live : snapshot).reduce((a, b) => a + b, 0);
  const u64 = (off: number, v: number) => buf.writeBigUInt64LE(BigInt(v), off);
  u64(HEADER.pid, spec.pid ?? 4242);
  u64(HEADER.nodeCount, spec.nodes.length + 1);
  u64(HEADER.funcCount, spec.funcs.length);
  u64(HEADER.currentBytes, spec.currentBytes ?? live.reduce((a, b) => a + b, 0));
  u64(HEADER.peakBytes, spec.peakBytes ?? peakSum);
  u64(HEADER.peakSource, peakSource);
  u64(HEADER.nodeCapacity, nodeCapacity);
  u64(HEADER.funcCapacity, funcCapacity);
  u64(HEADER.stringCapacity, stringCapacity);
  u64(HEADER.funcsOffset, funcsOff);
  u64(HEADER.nodesOffset, nodesOff);
  u64(HEADER.stringsOffset, stringsOff);
  u64(HEADER.liveOffset, liveOff);
  u64(HEADER.snapshotOffset, snapshotOff);
  u64(HEADER.updatedMs, spec.updatedMs ?? 1764035000000);
  u64(HEADER.tracking, 1);
  u64(HEADER.floorBytes, spec.floorBytes ?? 0);
  READING_FIELDS.forEach((field, i) => u64(readingOffset(field), spec.readings?.[i] ?? 0));
  u64(HEADER.readingsSource, spec.readingsSource ?? 0);
  u64(HEADER.oomReason, spec.oomReason ?? 0);
  buf.write(spec.python ?? '3.11.7', HEADER.python, HEADER_TEXT.python, 'latin1');
  Buffer.from((spec.argv ?? ['python', 'example.py']).join('\0') + '\0').copy(buf, HEADER.argv, 0, HEADER_TEXT.argv);
  buf.write(spec.cwd ?? '/work', HEADER.cwd, HEADER_TEXT.cwd, 'utf8');

  const funcFields = [FUNC_RECORD.fileOffset, FUNC_RECORD.fileLength, FUNC_RECORD.nameOffset, FUNC_RECORD.nameLength];
  funcRecords.forEach((r, i) => r.forEach((v, k) => buf.writeUInt32LE(v, funcsOff + i * FUNC_RECORD.size + funcFields[k]!)));
  spec.nodes.forEach((n, i) => {
    const off = nodesOff + (i + 1) * NODE_RECORD.size;
    buf.writeUInt32LE(n.parent, off + NODE_RECORD.parent);
    buf.writeUInt32LE(n.func, off + NODE_RECORD.func);
    buf.writeUInt32LE(n.line, off + NODE_RECORD.line);
  });
  Buffer.concat(strings).copy(buf, stringsOff);
  live.forEach((v, i) => buf.writeBigInt64LE(BigInt(v), liveOff + i * NODE_BYTES_RECORD));
  snapshot.forEach((v, i) => buf.writeBigInt64LE(BigInt(v), snapshotOff + i * NODE_BYTES_RECORD));
  return buf;
}

/** The seed example as a state file: nodes for <module>:15 → main:13 → make_big_array:4, and main:12 → make_two_arrays:7/8. */
export function exampleStateSpec(): StateSpec {
  const MiB = 1024 * 1024;
  return {
    funcs: [
      { file: 'example.py', name: '<module>' },
      { file: 'example.py', name: 'main' },
      { file: 'example.py', name: 'make_big_array' },
      { file: 'example.py', name: 'make_two_arrays' },
    ],
    nodes: [
      { parent: 0, func: 0, line: 15 }, // 1
      { parent: 1, func: 1, line: 13 }, // 2
      { parent: 2, func: 2, line: 4 }, // 3
      { parent: 1, func: 1, line: 12 }, // 4
      { parent: 4, func: 3, line: 7 }, // 5
      { parent: 4, func: 3, line: 8 }, // 6
    ],
    // At the peak all three arrays were live; afterwards arr1/arr2 were freed.
    snapshot: [0, 0, 0, 400 * MiB, 0, 80 * MiB, 80 * MiB],
    live: [0, 0, 0, 400 * MiB, 0, 0, 0],
    peakSource: 0,
    peakBytes: 560 * MiB,
    cwd: '/nonexistent-cwd',
  };
}
