/**
 * Test helper: builds state-file buffers per docs/protocol.md "State file",
 * so the reader can be tested without the C shim.
 */
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
  /** limit, usage, inactiveFile, workingSet, hostAvailable, available, swap */
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

  const funcsOff = 4096;
  const nodesOff = funcsOff + funcCapacity * 16;
  const stringsOff = nodesOff + nodeCapacity * 16;
  const liveOff = Math.ceil((stringsOff + stringCapacity) / 8) * 8;
  const snapshotOff = liveOff + nodeCapacity * 8;
  const buf = Buffer.alloc(snapshotOff + nodeCapacity * 8);

  buf.write('HWSTATE1', 0, 'latin1');
  buf.writeUInt32LE(1, 8);
  buf.writeUInt32LE(4096, 12);
  const live = spec.live ?? [];
  const snapshot = spec.snapshot ?? [];
  const peakSource = spec.peakSource ?? 0;
  const peakSum = (peakSource === 1 ? live : snapshot).reduce((a, b) => a + b, 0);
  const u64 = (off: number, v: number) => buf.writeBigUInt64LE(BigInt(v), off);
  u64(16, spec.pid ?? 4242);
  u64(24, spec.nodes.length + 1);
  u64(32, spec.funcs.length);
  u64(40, spec.currentBytes ?? live.reduce((a, b) => a + b, 0));
  u64(48, spec.peakBytes ?? peakSum);
  u64(56, peakSource);
  u64(64, nodeCapacity);
  u64(72, funcCapacity);
  u64(80, stringCapacity);
  u64(88, funcsOff);
  u64(96, nodesOff);
  u64(104, stringsOff);
  u64(112, liveOff);
  u64(120, snapshotOff);
  u64(128, spec.updatedMs ?? 1764035000000);
  u64(136, 1);
  u64(144, spec.floorBytes ?? 0);
  (spec.readings ?? [0, 0, 0, 0, 0, 0, 0]).forEach((v, i) => u64(152 + i * 8, v));
  u64(208, spec.readingsSource ?? 0);
  u64(216, spec.oomReason ?? 0);
  buf.write(spec.python ?? '3.11.7', 256, 32, 'latin1');
  Buffer.from((spec.argv ?? ['python', 'example.py']).join('\0') + '\0').copy(buf, 288, 0, 1024);
  buf.write(spec.cwd ?? '/work', 1312, 1024, 'utf8');

  funcRecords.forEach((r, i) => r.forEach((v, k) => buf.writeUInt32LE(v, funcsOff + i * 16 + k * 4)));
  spec.nodes.forEach((n, i) => {
    const off = nodesOff + (i + 1) * 16;
    buf.writeUInt32LE(n.parent, off);
    buf.writeUInt32LE(n.func, off + 4);
    buf.writeUInt32LE(n.line, off + 8);
  });
  Buffer.concat(strings).copy(buf, stringsOff);
  live.forEach((v, i) => buf.writeBigInt64LE(BigInt(v), liveOff + i * 8));
  snapshot.forEach((v, i) => buf.writeBigInt64LE(BigInt(v), snapshotOff + i * 8));
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
