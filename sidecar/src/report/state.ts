/**
 * Post-mortem reader of the binary state file (docs/protocol.md "State file").
 * The file may be truncated, half-written or hostile: every offset and count is
 * checked against the buffer before use, and any inconsistency is
 * HW_ERR_STATE_INVALID — never a RangeError, never an endless walk.
 */
import { HighwaterError } from '../errors.js';
import type { Frame, MemorySource, OomReason, ProfileData, Stack, Trigger } from './model.js';
import { openRegular, readAt, tooLarge } from './safe-file.js';
import { diskSourceReader, indentOf, type SourceReader } from './source.js';
import {
  emptyTruncation,
  foldedFramesMarker,
  isTruncated,
  KEEP_INNER,
  KEEP_OUTER,
  MAX_DEPTH,
  otherStacksFrame,
  outOfSpaceTables,
  selectLargest,
  validTimeMs,
} from './stacks.js';
import { timelineFromState } from './timeline-data.js';
import {
  AREA_RECORD,
  FUNC_RECORD,
  HEADER,
  NODE_BYTES_RECORD,
  NODE_RECORD,
  OOM_REASONS,
  PEAK_SOURCES,
  READINGS_SOURCES,
  readArgv,
  readHeaderText,
  readingOffset,
  STATE_HEADER_SIZE,
  STATE_MAGIC,
  STATE_VERSION,
  TIMELINE,
  TIMELINE_HEADER,
  TIMELINE_MAX_SAMPLES,
  TIMELINE_SAMPLE,
} from '../state/layout.js';

export { STATE_HEADER_SIZE, STATE_MAGIC } from '../state/layout.js';
const MEMORY_SOURCES: readonly MemorySource[] = READINGS_SOURCES;
const OOM_REASON_OF: ReadonlyArray<OomReason | null> = OOM_REASONS;

export interface StateReadOptions {
  /** Why the report is made; the state file cannot tell. @default 'killed' */
  trigger?: Trigger;
  /** Source text of a line, or undefined. @default read from disk, relative paths against the state's cwd */
  readSource?: SourceReader;
  /**
   * Which bytes per node become `stacks`: the peak (default), `live` (the
   * memory live now), or bytes per node taken earlier (`nodeBytes[i]` for
   * node i: a sample of the live area, watcher/live-sample.ts).
   */
  nodeBytes?: 'peak' | 'live' | Float64Array;
}

function bad(what: string): HighwaterError {
  return new HighwaterError('HW_ERR_STATE_INVALID', `state file: ${what}`);
}

function u64(buf: Buffer, off: number, name: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} is out of range (${v})`);
  return Number(v);
}

/** Checks that `count` records of `size` bytes at `off` lie inside the buffer. */
function area(buf: Buffer, off: number, count: number, size: number, name: string): void {
  if (off < STATE_HEADER_SIZE || off + count * size > buf.length) {
    throw bad(`${name} area (offset ${off}, ${count} × ${size} bytes) lies outside the ${buf.length}-byte file`);
  }
}

export function parseStateFile(buf: Buffer, opts: StateReadOptions = {}): ProfileData {
  if (buf.length < STATE_HEADER_SIZE) throw bad(`too short (${buf.length} bytes, header is ${STATE_HEADER_SIZE})`);
  const magic = buf.toString('latin1', HEADER.magic, HEADER.magic + STATE_MAGIC.length);
  if (magic !== STATE_MAGIC) throw bad(`bad magic ${JSON.stringify(magic)} (expected ${STATE_MAGIC})`);
  const version = buf.readUInt32LE(HEADER.version);
  if (version !== STATE_VERSION) throw bad(`unknown version ${version} (expected ${STATE_VERSION})`);
  const headerSize = buf.readUInt32LE(HEADER.headerSize);
  if (headerSize !== STATE_HEADER_SIZE) throw bad(`header size ${headerSize} (expected ${STATE_HEADER_SIZE})`);

  const h = (off: number, name: string) => u64(buf, off, name);
  const pid = h(HEADER.pid, 'pid');
  const nodeCount = h(HEADER.nodeCount, 'nodeCount');
  const funcCount = h(HEADER.funcCount, 'funcCount');
  const peakBytes = h(HEADER.peakBytes, 'peakBytes');
  const peakSource = h(HEADER.peakSource, 'peakSource');
  const nodeCapacity = h(HEADER.nodeCapacity, 'nodeCapacity');
  const funcCapacity = h(HEADER.funcCapacity, 'funcCapacity');
  const stringCapacity = h(HEADER.stringCapacity, 'stringCapacity');
  const funcsOff = h(HEADER.funcsOffset, 'funcs offset');
  const nodesOff = h(HEADER.nodesOffset, 'nodes offset');
  const stringsOff = h(HEADER.stringsOffset, 'strings offset');
  const liveOff = h(HEADER.liveOffset, 'live offset');
  const snapshotOff = h(HEADER.snapshotOffset, 'snapshot offset');
  if (nodeCount > nodeCapacity) throw bad(`nodeCount ${nodeCount} exceeds nodeCapacity ${nodeCapacity}`);
  if (funcCount > funcCapacity) throw bad(`funcCount ${funcCount} exceeds funcCapacity ${funcCapacity}`);
  if (peakSource >= PEAK_SOURCES.length) throw bad(`peakSource ${peakSource} (expected 0 or 1)`);
  // Only the published part of each area is read, so only it must be present:
  // capacity may be larger than what a truncated copy still holds.
  area(buf, funcsOff, funcCount, AREA_RECORD.funcsOffset, 'funcs');
  area(buf, nodesOff, nodeCount, AREA_RECORD.nodesOffset, 'nodes');
  // Strings: only the parts the published funcs name must be present (checked per string below).
  area(buf, stringsOff, 0, AREA_RECORD.stringsOffset, 'strings');
  area(buf, liveOff, nodeCount, AREA_RECORD.liveOffset, 'live');
  area(buf, snapshotOff, nodeCount, AREA_RECORD.snapshotOffset, 'snapshot');

  const readingsSource = h(HEADER.readingsSource, 'readingsSource');
  const oomCode = h(HEADER.oomReason, 'oomReason');
  const argv = readArgv(buf);
  const cwd = readHeaderText(buf, 'cwd');
  const readSource = opts.readSource ?? diskSourceReader(cwd);

  const funcs: Array<{ file: string; name: string }> = [];
  const str = (off: number, len: number, what: string): string => {
    if (off + len > stringCapacity) throw bad(`${what} string (offset ${off}, length ${len}) outside the strings area`);
    if (stringsOff + off + len > buf.length) throw bad(`${what} string (offset ${off}, length ${len}) lies beyond the end of the file`);
    return buf.toString('utf8', stringsOff + off, stringsOff + off + len);
  };
  for (let i = 0; i < funcCount; i++) {
    const r = funcsOff + i * FUNC_RECORD.size;
    funcs.push({
      file: str(buf.readUInt32LE(r + FUNC_RECORD.fileOffset), buf.readUInt32LE(r + FUNC_RECORD.fileLength), `func ${i} file`),
      name: str(buf.readUInt32LE(r + FUNC_RECORD.nameOffset), buf.readUInt32LE(r + FUNC_RECORD.nameLength), `func ${i} name`),
    });
  }

  // Nodes as typed arrays; a Frame object (and a source line read) only for
  // the nodes that end up in a kept stack. depth = frames in the node's stack.
  const parents = new Uint32Array(Math.max(nodeCount, 1));
  const funcOf = new Uint32Array(Math.max(nodeCount, 1));
  const lineOf = new Uint32Array(Math.max(nodeCount, 1));
  const depth = new Uint32Array(Math.max(nodeCount, 1));
  // The ancestor at depth KEEP_OUTER (0 when shallower): where a deep stack's outer part ends.
  const outerEnd = new Uint32Array(Math.max(nodeCount, 1));
  for (let i = 1; i < nodeCount; i++) {
    const r = nodesOff + i * NODE_RECORD.size;
    const parent = buf.readUInt32LE(r + NODE_RECORD.parent);
    const func = buf.readUInt32LE(r + NODE_RECORD.func);
    // Nodes are appended after their parent, so parent < i; enforcing it
    // also makes every walk to the root finite on a hostile file.
    if (parent >= i) throw bad(`node ${i} has parent ${parent} (must be an earlier node)`);
    if (func >= funcCount) throw bad(`node ${i} refers to func ${func} of ${funcCount}`);
    parents[i] = parent;
    funcOf[i] = func;
    lineOf[i] = buf.readUInt32LE(r + NODE_RECORD.line);
    depth[i] = depth[parent]! + 1;
    outerEnd[i] = depth[i] === KEEP_OUTER ? i : depth[i]! > KEEP_OUTER ? outerEnd[parent]! : 0;
  }
  // One Frame object per node: stacks share their prefixes' frames.
  const frames = new Map<number, Frame>();
  const frameOf = (n: number): Frame => {
    let f = frames.get(n);
    if (!f) {
      const fn = funcs[funcOf[n]!]!;
      const text = readSource(fn.file, lineOf[n]!) ?? '';
      f = { file: fn.file, line: lineOf[n]!, function: fn.name, code: text.trim(), ...indentOf(text) };
      frames.set(n, f);
    }
    return f;
  };
  /** Root-first frames of `steps` nodes walking up from `n`. */
  const walk = (n: number, steps: number): Frame[] => {
    const out = new Array<Frame>(steps);
    for (let k = steps - 1; k >= 0; k--, n = parents[n]!) out[k] = frameOf(n);
    return out;
  };
  const truncation = emptyTruncation();
  const outOfSpace = outOfSpaceTables(h(HEADER.spaceShort, 'spaceShort'));
  if (outOfSpace.length) truncation.outOfSpace = outOfSpace;
  const stackOf = (n: number): Frame[] => {
    const d = depth[n]!;
    if (d <= MAX_DEPTH) return walk(n, d);
    truncation.foldedStacks++;
    truncation.foldedFrames += d - KEEP_OUTER - KEEP_INNER;
    return [...walk(outerEnd[n]!, KEEP_OUTER), foldedFramesMarker(d - KEEP_OUTER - KEEP_INNER), ...walk(n, KEEP_INNER)];
  };

  const peakOff = PEAK_SOURCES[peakSource] === 'live' || opts.nodeBytes === 'live' ? liveOff : snapshotOff;
  const given = opts.nodeBytes instanceof Float64Array ? opts.nodeBytes : undefined;
  const withBytes: number[] = [];
  const nodeBytes: number[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const bytes = given ? (given[i] ?? 0) : Number(buf.readBigInt64LE(peakOff + i * NODE_BYTES_RECORD));
    if (!(bytes > 0)) continue;
    withBytes.push(i);
    nodeBytes.push(bytes);
  }
  const keep = selectLargest(nodeBytes);
  const stacks: Stack[] = [];
  let otherBytes = 0;
  for (let k = 0; k < withBytes.length; k++) {
    if (keep && !keep[k]) {
      otherBytes += nodeBytes[k]!;
      truncation.otherStacks++;
    } else stacks.push({ bytes: nodeBytes[k]!, frames: stackOf(withBytes[k]!) });
  }
  if (truncation.otherStacks > 0) stacks.push({ bytes: otherBytes, frames: [otherStacksFrame(truncation.otherStacks)] });
  truncation.otherBytes = otherBytes;

  const r = (field: Parameters<typeof readingOffset>[0]) => h(readingOffset(field), 'reading');
  const sampleRateBytes = h(HEADER.sampleRateBytes, 'sampleRateBytes');
  return {
    trigger: opts.trigger ?? 'killed',
    oomReason: OOM_REASON_OF[oomCode] ?? null,
    oomAllocation: null,
    peakBytes,
    timeMs: validTimeMs(h(HEADER.updatedMs, 'updatedMs')),
    process: { pid, argv, python: readHeaderText(buf, 'python'), cwd },
    memory: {
      source: MEMORY_SOURCES[readingsSource] ?? 'none',
      limitBytes: r('limitBytes'),
      workingSetBytes: r('workingSetBytes'),
      availableBytes: r('availableBytes'),
      swapBytes: r('swapBytes'),
      floorBytes: h(HEADER.floorBytes, 'floorBytes'),
    },
    // 0 = exact (and in state files of older shims).
    sampling: sampleRateBytes > 0 ? { rateBytes: sampleRateBytes } : null,
    stacks,
    currentStacks: null,
    ...(isTruncated(truncation) ? { truncation } : {}),
    ...timelineField(timelineFromState(buf, h(HEADER.timelineOffset, 'timeline offset'))),
  };
}

function timelineField(t: ReturnType<typeof timelineFromState>): { timeline?: NonNullable<typeof t> } {
  return t ? { timeline: t } : {};
}

/** Most published data (header, records, strings) read from one state file. */
export const MAX_STATE_READ_BYTES = 512 * 1024 * 1024;

/**
 * Reads a state file for a post-mortem without reading its capacity: the
 * file is sparse and mostly holes (hundreds of MiB), so only the header and
 * the published part of each area are read, into a compact copy whose header
 * offsets point at the copies. The file must be a regular file reached
 * without a symlink (HW_ERR_INPUT_UNREADABLE otherwise).
 */
export async function readStateFile(path: string, opts: StateReadOptions = {}): Promise<ProfileData> {
  const { fh, size } = await openRegular(path);
  try {
    const header = await readAt(fh, 0, STATE_HEADER_SIZE);
    if (header.length < STATE_HEADER_SIZE) return parseStateFile(header, opts); // says "too short"
    const h = (off: number, name: string) => u64(header, off, name);
    const nodeCount = h(HEADER.nodeCount, 'nodeCount');
    const funcCount = h(HEADER.funcCount, 'funcCount');
    const stringCapacity = h(HEADER.stringCapacity, 'stringCapacity');
    const need = (name: string, off: number, len: number): [number, number] => {
      if (off < STATE_HEADER_SIZE || off + len > size) {
        throw bad(`${name} area (offset ${off}, ${len} bytes) lies outside the ${size}-byte file`);
      }
      return [off, len];
    };
    const areaOf = (field: keyof typeof AREA_RECORD, name: string, count: number): [number, [number, number]] => [
      HEADER[field],
      need(name, h(HEADER[field], `${name} offset`), count * AREA_RECORD[field]),
    ];
    const areas: Array<[number, [number, number]]> = [
      areaOf('funcsOffset', 'funcs', funcCount),
      areaOf('nodesOffset', 'nodes', nodeCount),
      areaOf('liveOffset', 'live', nodeCount),
      areaOf('snapshotOffset', 'snapshot', nodeCount),
    ];
    let total = STATE_HEADER_SIZE + areas.reduce((a, [, [, len]]) => a + len, 0);
    if (total > MAX_STATE_READ_BYTES) throw tooLarge(path, total, MAX_STATE_READ_BYTES);
    const funcsBuf = await readAt(fh, areas[0]![1][0], areas[0]![1][1]);
    // The strings the published funcs name, and no more (capped by the capacity).
    let stringsEnd = 0;
    for (let i = 0; i + FUNC_RECORD.size <= funcsBuf.length; i += FUNC_RECORD.size) {
      const end = (off: number, len: number) => funcsBuf.readUInt32LE(i + off) + funcsBuf.readUInt32LE(i + len);
      stringsEnd = Math.max(stringsEnd, end(FUNC_RECORD.fileOffset, FUNC_RECORD.fileLength), end(FUNC_RECORD.nameOffset, FUNC_RECORD.nameLength));
    }
    const stringsOff = h(HEADER.stringsOffset, 'strings offset');
    const stringsLen = Math.max(0, Math.min(stringsEnd, stringCapacity, size - stringsOff));
    areas.push([HEADER.stringsOffset, [stringsOff, stringsLen]]);
    total += stringsLen;
    if (total > MAX_STATE_READ_BYTES) throw tooLarge(path, total, MAX_STATE_READ_BYTES);

    // The timeline ring, when the shim keeps one: its header and the samples it holds.
    const tlOff = h(HEADER.timelineOffset, 'timeline offset');
    if (tlOff >= STATE_HEADER_SIZE && tlOff + TIMELINE_HEADER <= size) {
      const count = Number((await readAt(fh, tlOff, TIMELINE_HEADER)).readBigUInt64LE(TIMELINE.count));
      const len = TIMELINE_HEADER + Math.min(count, TIMELINE_MAX_SAMPLES) * TIMELINE_SAMPLE;
      if (tlOff + len <= size) {
        areas.push([HEADER.timelineOffset, [tlOff, len]]);
        total += len;
      }
    }

    const compact = Buffer.alloc(total);
    header.copy(compact, 0);
    let at = STATE_HEADER_SIZE;
    for (const [field, [off, len]] of areas) {
      const part = field === HEADER.funcsOffset ? funcsBuf : await readAt(fh, off, len);
      part.copy(compact, at);
      compact.writeBigUInt64LE(BigInt(at), field);
      at += part.length;
    }
    return parseStateFile(compact.subarray(0, at), opts);
  } finally {
    await fh.close().catch(() => {});
  }
}
