/**
 * Post-mortem reader of the binary state file (docs/protocol.md "State file").
 * The file may be truncated, half-written or hostile: every offset and count is
 * checked against the buffer before use, and any inconsistency is
 * HW_ERR_STATE_INVALID — never a RangeError, never an endless walk.
 */
import { HighwaterError } from '../errors.js';
import type { Frame, MemorySource, OomReason, ProfileData, Stack, Trigger } from './model.js';
import { diskSourceReader, indentOf, type SourceReader } from './source.js';
import { timelineFromState } from './timeline-data.js';

export const STATE_MAGIC = 'HWSTATE1';
export const STATE_HEADER_SIZE = 4096;
const FUNC_RECORD = 16;
const NODE_RECORD = 16;
const MEMORY_SOURCES: readonly MemorySource[] = ['none', 'cgroup-v1', 'cgroup-v2', 'host'];
const OOM_REASONS: ReadonlyArray<OomReason | null> = [null, 'low-available', 'swap', 'failed-allocation'];

export interface StateReadOptions {
  /** Why the report is made; the state file cannot tell. @default 'killed' */
  trigger?: Trigger;
  /** Source text of a line, or undefined. @default read from disk, relative paths against the state's cwd */
  readSource?: SourceReader;
}

function bad(what: string): HighwaterError {
  return new HighwaterError('HW_ERR_STATE_INVALID', `state file: ${what}`);
}

function u64(buf: Buffer, off: number, name: string): number {
  const v = buf.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`${name} is out of range (${v})`);
  return Number(v);
}

/** NUL-terminated (or NUL-padded) ASCII/UTF-8 field. */
function cstr(buf: Buffer, off: number, len: number): string {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? field.length : nul).toString('utf8');
}

/** Checks that `count` records of `size` bytes at `off` lie inside the buffer. */
function area(buf: Buffer, off: number, count: number, size: number, name: string): void {
  if (off < STATE_HEADER_SIZE || off + count * size > buf.length) {
    throw bad(`${name} area (offset ${off}, ${count} × ${size} bytes) lies outside the ${buf.length}-byte file`);
  }
}

export function parseStateFile(buf: Buffer, opts: StateReadOptions = {}): ProfileData {
  if (buf.length < STATE_HEADER_SIZE) throw bad(`too short (${buf.length} bytes, header is ${STATE_HEADER_SIZE})`);
  const magic = buf.toString('latin1', 0, 8);
  if (magic !== STATE_MAGIC) throw bad(`bad magic ${JSON.stringify(magic)} (expected ${STATE_MAGIC})`);
  const version = buf.readUInt32LE(8);
  if (version !== 1) throw bad(`unknown version ${version} (expected 1)`);
  const headerSize = buf.readUInt32LE(12);
  if (headerSize !== STATE_HEADER_SIZE) throw bad(`header size ${headerSize} (expected ${STATE_HEADER_SIZE})`);

  const h = (off: number, name: string) => u64(buf, off, name);
  const pid = h(16, 'pid');
  const nodeCount = h(24, 'nodeCount');
  const funcCount = h(32, 'funcCount');
  const peakBytes = h(48, 'peakBytes');
  const peakSource = h(56, 'peakSource');
  const nodeCapacity = h(64, 'nodeCapacity');
  const funcCapacity = h(72, 'funcCapacity');
  const stringCapacity = h(80, 'stringCapacity');
  const funcsOff = h(88, 'funcs offset');
  const nodesOff = h(96, 'nodes offset');
  const stringsOff = h(104, 'strings offset');
  const liveOff = h(112, 'live offset');
  const snapshotOff = h(120, 'snapshot offset');
  if (nodeCount > nodeCapacity) throw bad(`nodeCount ${nodeCount} exceeds nodeCapacity ${nodeCapacity}`);
  if (funcCount > funcCapacity) throw bad(`funcCount ${funcCount} exceeds funcCapacity ${funcCapacity}`);
  if (peakSource > 1) throw bad(`peakSource ${peakSource} (expected 0 or 1)`);
  // Only the published part of each area is read, so only it must be present:
  // capacity may be larger than what a truncated copy still holds.
  area(buf, funcsOff, funcCount, FUNC_RECORD, 'funcs');
  area(buf, nodesOff, nodeCount, NODE_RECORD, 'nodes');
  area(buf, stringsOff, stringCapacity, 1, 'strings');
  area(buf, liveOff, nodeCount, 8, 'live');
  area(buf, snapshotOff, nodeCount, 8, 'snapshot');

  const readingsSource = h(208, 'readingsSource');
  const oomCode = h(216, 'oomReason');
  const argv = cstrList(buf.subarray(288, 288 + 1024));
  const cwd = cstr(buf, 1312, 1024);
  const readSource = opts.readSource ?? diskSourceReader(cwd);

  const funcs: Array<{ file: string; name: string }> = [];
  const str = (off: number, len: number, what: string): string => {
    if (off + len > stringCapacity) throw bad(`${what} string (offset ${off}, length ${len}) outside the strings area`);
    return buf.toString('utf8', stringsOff + off, stringsOff + off + len);
  };
  for (let i = 0; i < funcCount; i++) {
    const r = funcsOff + i * FUNC_RECORD;
    funcs.push({
      file: str(buf.readUInt32LE(r), buf.readUInt32LE(r + 4), `func ${i} file`),
      name: str(buf.readUInt32LE(r + 8), buf.readUInt32LE(r + 12), `func ${i} name`),
    });
  }

  // One Frame object per node: stacks share their prefixes' frames.
  const frames: Array<Frame | null> = [null];
  const parents: number[] = [0];
  for (let i = 1; i < nodeCount; i++) {
    const r = nodesOff + i * NODE_RECORD;
    const parent = buf.readUInt32LE(r);
    const func = buf.readUInt32LE(r + 4);
    const line = buf.readUInt32LE(r + 8);
    // Nodes are appended after their parent, so parent < i; enforcing it
    // also makes every walk to the root finite on a hostile file.
    if (parent >= i) throw bad(`node ${i} has parent ${parent} (must be an earlier node)`);
    if (func >= funcCount) throw bad(`node ${i} refers to func ${func} of ${funcCount}`);
    const f = funcs[func]!;
    const text = readSource(f.file, line) ?? '';
    frames.push({ file: f.file, line, function: f.name, code: text.trim(), ...indentOf(text) });
    parents.push(parent);
  }

  const peakOff = peakSource === 1 ? liveOff : snapshotOff;
  const stacks: Stack[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const bytes = Number(buf.readBigInt64LE(peakOff + i * 8));
    if (!(bytes > 0)) continue;
    const path: Frame[] = [];
    for (let n = i; n !== 0; n = parents[n]!) path.push(frames[n]!);
    stacks.push({ bytes, frames: path.reverse() });
  }

  const r = (k: number) => h(152 + k * 8, 'reading');
  return {
    trigger: opts.trigger ?? 'killed',
    oomReason: OOM_REASONS[oomCode] ?? null,
    oomAllocation: null,
    peakBytes,
    timeMs: h(128, 'updatedMs'),
    process: { pid, argv, python: cstr(buf, 256, 32), cwd },
    memory: {
      source: MEMORY_SOURCES[readingsSource] ?? 'none',
      limitBytes: r(0),
      workingSetBytes: r(3),
      availableBytes: r(5),
      swapBytes: r(6),
      floorBytes: h(144, 'floorBytes'),
    },
    stacks,
    currentStacks: null,
    ...timelineField(timelineFromState(buf, h(240, 'timeline offset'))),
  };
}

function timelineField(t: ReturnType<typeof timelineFromState>): { timeline?: NonNullable<typeof t> } {
  return t ? { timeline: t } : {};
}

/** `/proc/self/cmdline` layout: NUL-separated, NUL-padded, possibly cut short. */
function cstrList(field: Buffer): string[] {
  const parts = field.toString('utf8').split('\0');
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  return parts;
}
