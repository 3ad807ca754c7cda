/**
 * The binary layout of a state file `hw-<pid>.state`, written by the shim
 * (`native/shim/hw.h`) and documented in docs/protocol.md "State file". This
 * is the one place the TypeScript side knows it: the post-mortem reader
 * (`report/state.ts`), the watcher's header reader (`watcher/state-header.ts`)
 * and the test writer (`test/report/state-writer.ts`) all take their offsets,
 * record sizes and enum values from here. `test/state/layout.test.ts` checks
 * every entry against the tables in docs/protocol.md, so a field added to one
 * and not the other fails the tests (the C struct has `_Static_assert`s
 * against the same table).
 *
 * Pure data and pure helpers: no I/O, no imports.
 */

export const STATE_MAGIC = 'HWSTATE1';
export const STATE_VERSION = 1;
export const STATE_HEADER_SIZE = 4096;

/**
 * Byte offsets of the header fields. Every field is a little-endian `u64`
 * except the ones named in {@link HEADER_TEXT} and `magic` (8 ASCII bytes),
 * `version` and `headerSize` (`u32`). `*Offset` fields hold the file offset
 * of an area (see {@link AREA_RECORD}).
 */
export const HEADER = {
  magic: 0,
  version: 8,
  headerSize: 12,
  pid: 16,
  nodeCount: 24,
  funcCount: 32,
  currentBytes: 40,
  peakBytes: 48,
  peakSource: 56,
  nodeCapacity: 64,
  funcCapacity: 72,
  stringCapacity: 80,
  funcsOffset: 88,
  nodesOffset: 96,
  stringsOffset: 104,
  liveOffset: 112,
  snapshotOffset: 120,
  updatedMs: 128,
  tracking: 136,
  floorBytes: 144,
  /** The first of {@link READING_FIELDS}, 8 bytes each. */
  readings: 152,
  readingsSource: 208,
  oomReason: 216,
  exitStatus: 224,
  activeFileBytes: 232,
  failedAllocations: 240,
  failedBytes: 248,
  python: 256,
  argv: 288,
  cwd: 1312,
  sampleRateBytes: 2336,
  timelineOffset: 2344,
  // Multiple processes (docs/protocol.md "Multiple processes"; read by watcher/process-facts.ts).
  origin: 2352,
  parentPid: 2360,
  trackedParentPid: 2368,
  startMs: 2376,
  startTicks: 2384,
  inheritedBytes: 2392,
  forkSeq: 2400,
  containerSlot: 2408,
  containerStartEpoch: 2416,
  containerEnded: 2424,
  containerEndEpoch: 2432,
  cpeakEpoch: 2440,
  cpeakBytes: 2448,
  cpeakOffset: 2456,
  endMs: 2464,
  exitCode: 2472,
  // The kernel's OOM kill as the process saw it (docs/protocol.md; read by watcher/process-facts.ts).
  killMs: 2480,
  killBytes: 2488,
  killOffset: 2496,
  // Tables the shim could not grow, the run dir being full (bits 1 stacks, 2 functions, 4 names).
  spaceShort: 2504,
} as const;

export type HeaderField = keyof typeof HEADER;

/** Fixed-size text fields: their length in bytes (NUL-padded; argv is NUL-separated). */
export const HEADER_TEXT = {
  python: 32,
  argv: 1024,
  cwd: 1024,
} as const satisfies Partial<Record<HeaderField, number>>;

/** The readings block at {@link HEADER}.readings, in this order (each `u64`). */
export const READING_FIELDS = [
  'limitBytes',
  'usageBytes',
  'inactiveFileBytes',
  'workingSetBytes',
  'hostAvailableBytes',
  'availableBytes',
  'swapBytes',
] as const;

export type ReadingField = (typeof READING_FIELDS)[number];

/** Header offset of one reading. */
export function readingOffset(field: ReadingField): number {
  return HEADER.readings + READING_FIELDS.indexOf(field) * 8;
}

/** `funcs` record: offsets and lengths into the `strings` area (UTF-8, no terminator). */
export const FUNC_RECORD = { size: 16, fileOffset: 0, fileLength: 4, nameOffset: 8, nameLength: 12 } as const;
/** `nodes` record; node 0 is the root (no frame). */
export const NODE_RECORD = { size: 16, parent: 0, func: 4, line: 8, reserved: 12 } as const;
/** `live` and `snapshot`: one `i64` per node. */
export const NODE_BYTES_RECORD = 8;

/** Record size of each area a header `*Offset` field points at (strings: bytes). */
export const AREA_RECORD = {
  funcsOffset: FUNC_RECORD.size,
  nodesOffset: NODE_RECORD.size,
  stringsOffset: 1,
  liveOffset: NODE_BYTES_RECORD,
  snapshotOffset: NODE_BYTES_RECORD,
  cpeakOffset: NODE_BYTES_RECORD,
  killOffset: NODE_BYTES_RECORD,
} as const satisfies Partial<Record<HeaderField, number>>;

/** The timeline region at {@link HEADER}.timelineOffset (docs/protocol.md "Timeline"). */
export const TIMELINE = {
  capacity: 0,
  count: 8,
  intervalMs: 16,
  peakMs: 24,
  /** `i64` */
  peakBytes: 32,
  startMs: 40,
  /** Where the samples start: the region header's size. */
  samples: 64,
} as const;
export const TIMELINE_HEADER = TIMELINE.samples;
/** One sample: {@link TIMELINE_SAMPLE_FIELDS}, 8 bytes each. */
export const TIMELINE_SAMPLE = 40;
export const TIMELINE_SAMPLE_FIELDS = ['timeMs', 'trackedBytes', 'workingSetBytes', 'limitBytes', 'floorBytes'] as const;
/** The shim keeps at most 4096 samples; more is a hostile or foreign file. */
export const TIMELINE_MAX_SAMPLES = 4096;

/** `readingsSource` values by their number. */
export const READINGS_SOURCES = ['none', 'cgroup-v1', 'cgroup-v2', 'host'] as const;
/** `oomReason` values by their number (0: no OOM). */
export const OOM_REASONS = [null, 'low-available', 'swap', 'failed-allocation'] as const;
/** `peakSource` values by their number: which per-node area holds the peak. */
export const PEAK_SOURCES = ['snapshot', 'live'] as const;

/** The exit code of a process stopped for running out of memory (the shim's `_exit`, and `highwater run`'s). */
export const EXIT_OOM = 53;
/** `exitStatus` is this bit plus the code when the shim itself ended the process; 0 while it runs. */
export const SHIM_EXITED = 0x100;

/** The `exitStatus` the shim publishes when it ends the process with `code`. */
export function shimExitStatus(code: number): number {
  return SHIM_EXITED | code;
}

/** A NUL-terminated (or NUL-padded) UTF-8 field of `len` bytes at `off`. */
export function readCString(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

/** `/proc/self/cmdline` layout: NUL-separated, NUL-padded, possibly cut short. */
export function splitCmdline(raw: Buffer): string[] {
  const parts = raw.toString('utf8').split('\0');
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** The python or cwd field of a header. */
export function readHeaderText(header: Buffer, field: 'python' | 'cwd'): string {
  return readCString(header, HEADER[field], HEADER_TEXT[field]);
}

/** The argv field of a header, split. */
export function readArgv(header: Buffer): string[] {
  return splitCmdline(header.subarray(HEADER.argv, HEADER.argv + HEADER_TEXT.argv));
}
