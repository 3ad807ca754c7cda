/**
 * Raw dump reader: JSON Lines (docs/protocol.md "Raw dump") → ProfileData.
 * `parseDump` is pure; `readDump` only adds the file read.
 */
import { HighwaterError } from '../errors.js';
import type { Frame, MemorySource, OomReason, ProfileData, Stack, Timeline, Trigger } from './model.js';
import { readRegularFile } from './safe-file.js';
import {
  emptyTruncation,
  validTimeMs,
  foldDeep,
  foldedFramesMarker,
  isTruncated,
  MAX_STACKS,
  otherStacksFrame,
  outOfSpaceTables,
  selectLargest,
} from './stacks.js';
import { indentOf } from './source.js';
import { timelineFromDumpLine } from './timeline-data.js';

const DUMP_TRIGGERS: readonly Trigger[] = ['exit', 'oom', 'signal', 'api', 'request'];
const OOM_REASONS: readonly OomReason[] = ['low-available', 'swap', 'failed-allocation'];
const MEMORY_SOURCES: readonly MemorySource[] = ['cgroup-v1', 'cgroup-v2', 'host', 'none'];

type Obj = Record<string, unknown>;

function invalid(lineNo: number, what: string): HighwaterError {
  return new HighwaterError('HW_ERR_DUMP_INVALID', `raw dump line ${lineNo}: ${what}`);
}

function parseLine(text: string, lineNo: number): Obj {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HighwaterError('HW_ERR_DUMP_INVALID', `raw dump line ${lineNo}: not JSON`, { cause: e });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(lineNo, 'not a JSON object');
  }
  return value as Obj;
}

/** Non-negative integer that survives the trip through a double exactly. */
function count(o: Obj, key: string, lineNo: number): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw invalid(lineNo, `"${key}" must be a non-negative integer`);
  }
  return v;
}

function str(o: Obj, key: string, lineNo: number): string {
  const v = o[key];
  if (typeof v !== 'string') throw invalid(lineNo, `"${key}" must be a string`);
  return v;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], key: string, lineNo: number): T {
  if (typeof v !== 'string' || !allowed.includes(v as T)) {
    throw invalid(lineNo, `"${key}" must be one of ${allowed.join(', ')}`);
  }
  return v as T;
}

/** Tells a dump cut short (the writer died) from one that is malformed. */
function isEndLine(text: string): boolean {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && (v as Obj).type === 'end';
  } catch {
    return false;
  }
}

type RawFrames = Array<[number, number]>;

function rawFrames(o: Obj, lineNo: number): RawFrames {
  const v = o.frames;
  if (!Array.isArray(v)) throw invalid(lineNo, '"frames" must be an array');
  for (const f of v) {
    if (!Array.isArray(f) || f.length !== 2 || !f.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) {
      throw invalid(lineNo, '"frames" entries must be [funcId, line]');
    }
  }
  return v as RawFrames;
}

/**
 * The stack lines of one snapshot as first read: bytes and where the line is,
 * in typed arrays (a million stacks must not be a million objects), and the
 * frames of the first MAX_STACKS only; past that the smallest are merged
 * away, and the few kept beyond them are read again from the text.
 */
class StackLines {
  length = 0;
  bytes = new Float64Array(1024);
  /** start, end and line number of each line */
  where = new Float64Array(3 * 1024);
  readonly frames: RawFrames[] = [];

  push(bytes: number, frames: RawFrames, start: number, end: number, lineNo: number): void {
    if (this.length === this.bytes.length) {
      const bytes = new Float64Array(this.bytes.length * 2);
      bytes.set(this.bytes);
      this.bytes = bytes;
      const where = new Float64Array(this.where.length * 2);
      where.set(this.where);
      this.where = where;
    }
    const i = this.length++;
    this.bytes[i] = bytes;
    this.where.set([start, end, lineNo], 3 * i);
    if (i < MAX_STACKS) this.frames.push(frames);
  }
}

/** Largest dump highwater reads (docs/report.md "Limits"). */
export const MAX_DUMP_BYTES = 128 * 1024 * 1024;

export function parseDump(text: string): ProfileData {
  // Lines are walked by offset, never split into an array: a dump of a
  // million stacks must not hold a second copy of itself as line strings.
  let textEnd = text.length;
  if (textEnd > 0 && text.charCodeAt(textEnd - 1) === 10) textEnd--; // a trailing newline is not a line
  const lineAt = (start: number, end: number): string => (end > start && text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end));
  const firstEnd = (() => {
    const nl = text.indexOf('\n');
    return nl < 0 || nl > textEnd ? textEnd : nl;
  })();
  const lastStart = textEnd === 0 ? 0 : text.lastIndexOf('\n', textEnd - 1) + 1;
  const empty = text.length === 0;
  const oneLine = !empty && lastStart === 0;
  const countLines = (): number => {
    if (empty) return 0;
    let n = 1;
    for (let i = text.indexOf('\n'); i >= 0 && i < textEnd; i = text.indexOf('\n', i + 1)) n++;
    return n;
  };

  // Truncation is decided first: a writer that died mid-line leaves a last
  // line that is not JSON, and that is a truncated dump, not an invalid one.
  // A complete first line that is not a header is invalid regardless.
  const truncated = () => new HighwaterError('HW_ERR_DUMP_TRUNCATED', `raw dump is truncated: read ${countLines()} lines, no end line`);
  if (empty) throw truncated();
  const lastIsEnd = isEndLine(lineAt(lastStart, textEnd));
  if (oneLine && !lastIsEnd) throw truncated();
  const header = parseLine(lineAt(0, firstEnd), 1);
  if (header.type !== 'header' || header.format !== 'highwater-dump') {
    throw invalid(1, 'missing header (expected {"type":"header","format":"highwater-dump",...})');
  }
  if (!lastIsEnd) throw truncated();
  if (header.version !== 1) throw invalid(1, `unknown version ${JSON.stringify(header.version)} (expected 1)`);

  const funcs = new Map<number, { file: string; name: string }>();
  const sources = new Map<string, string>();
  const rawPeak = new StackLines();
  const rawCurrent = new StackLines();
  let rawOom: { bytes: number; frames: RawFrames; lineNo: number } | null = null;
  let rawFailed: { bytes: number; frames: RawFrames; lineNo: number; times: number } | null = null;
  let stackLines = 0;
  let timeline: Timeline | undefined;
  let spaceShort = 0; // `outOfSpace` line: the state header's spaceShort bits

  let lineNo = 1;
  for (let start = firstEnd + 1; start < lastStart;) {
    const nl = text.indexOf('\n', start);
    const end = nl < 0 || nl > textEnd ? textEnd : nl;
    lineNo++;
    const o = parseLine(lineAt(start, end), lineNo);
    switch (o.type) {
      case 'func':
        funcs.set(count(o, 'id', lineNo), { file: str(o, 'file', lineNo), name: str(o, 'name', lineNo) });
        break;
      case 'stack': {
        stackLines++;
        const snap = oneOf(o.snapshot, ['peak', 'current'], 'snapshot', lineNo);
        const list = snap === 'peak' ? rawPeak : rawCurrent;
        list.push(count(o, 'bytes', lineNo), rawFrames(o, lineNo), start, end, lineNo);
        break;
      }
      case 'oomAllocation':
        rawOom = { bytes: count(o, 'bytes', lineNo), frames: rawFrames(o, lineNo), lineNo };
        break;
      case 'failedAllocation':
        rawFailed = { times: count(o, 'count', lineNo), bytes: count(o, 'bytes', lineNo), frames: rawFrames(o, lineNo), lineNo };
        break;
      case 'timeline':
        timeline = timelineFromDumpLine(o, lineNo);
        break;
      case 'outOfSpace':
        spaceShort = count(o, 'bits', lineNo);
        break;
      case 'source':
        sources.set(`${str(o, 'file', lineNo)}\0${count(o, 'line', lineNo)}`, str(o, 'text', lineNo));
        break;
      case 'header':
      case 'end':
        throw invalid(lineNo, `"${o.type}" line out of place`);
      default:
        // Unknown line types are skipped: the format may gain lines without a
        // version bump, as report.json may gain fields.
        break;
    }
    start = end + 1;
  }

  const endNo = lineNo + 1;
  const end = parseLine(lineAt(lastStart, textEnd), endNo);
  const expected = { funcs: funcs.size, stacks: stackLines, sources: sources.size };
  for (const [key, actual] of Object.entries(expected)) {
    if (end[key] !== undefined && count(end, key, endNo) !== actual) {
      throw invalid(endNo, `end line says ${String(end[key])} ${key}, the dump holds ${actual}`);
    }
  }
  const truncation = emptyTruncation();
  const outOfSpace = outOfSpaceTables(spaceShort);
  if (outOfSpace.length) truncation.outOfSpace = outOfSpace;

  // One shared Frame object per (func, line): less memory, and the stack
  // helpers recognise equal frames by identity without building string keys.
  const frameCache = new Map<string, Frame>();
  const resolve = (raw: RawFrames, lineNo: number): Frame[] =>
    foldDeep<[number, number] | Frame>(raw, foldedFramesMarker, truncation).map((f) => {
      if (!Array.isArray(f)) return f; // the marker of folded frames
      const [id, line] = f;
      const key = `${id}:${line}`;
      let frame = frameCache.get(key);
      if (frame) return frame;
      const func = funcs.get(id);
      if (!func) throw invalid(lineNo, `frame refers to unknown func id ${id}`);
      const code = sources.get(`${func.file}\0${line}`) ?? '';
      frame = { file: func.file, line, function: func.name, code: code.trim(), ...indentOf(code) };
      frameCache.set(key, frame);
      return frame;
    });
  const toStack = (s: { bytes: number; frames: RawFrames; lineNo: number }): Stack => ({ bytes: s.bytes, frames: resolve(s.frames, s.lineNo) });
  /** The stacks of one snapshot within the limits: the largest kept, the rest merged into one. */
  const bounded = (raw: StackLines): Stack[] => {
    const keep = selectLargest(raw.bytes.subarray(0, raw.length));
    const out: Stack[] = [];
    let otherBytes = 0;
    let otherCount = 0;
    for (let i = 0; i < raw.length; i++) {
      const bytes = raw.bytes[i]!;
      if (keep && !keep[i]) {
        otherBytes += bytes;
        otherCount++;
        continue;
      }
      const start = raw.where[3 * i]!;
      const end = raw.where[3 * i + 1]!;
      const lineNo = raw.where[3 * i + 2]!;
      const frames = raw.frames[i] ?? rawFrames(parseLine(lineAt(start, end), lineNo), lineNo);
      out.push(toStack({ bytes, frames, lineNo }));
    }
    if (otherCount > 0) {
      truncation.otherStacks += otherCount;
      truncation.otherBytes += otherBytes;
      out.push({ bytes: otherBytes, frames: [otherStacksFrame(otherCount)] });
    }
    return out;
  };

  const mem = (typeof header.memory === 'object' && header.memory !== null ? header.memory : {}) as Obj;
  const memNum = (key: string): number => (mem[key] === undefined ? 0 : count(mem, key, 1));
  const argv = header.argv;
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) {
    throw invalid(1, '"argv" must be an array of strings');
  }
  const trigger = oneOf(header.trigger, DUMP_TRIGGERS, 'trigger', 1);
  const oomReason = header.oomReason == null ? null : oneOf(header.oomReason, OOM_REASONS, 'oomReason', 1);

  return {
    trigger,
    oomReason,
    oomAllocation: rawOom ? toStack(rawOom) : null,
    peakBytes: count(header, 'peakBytes', 1),
    timeMs: header.timeMs === undefined ? 0 : validTimeMs(count(header, 'timeMs', 1)),
    process: {
      pid: count(header, 'pid', 1),
      argv: argv as string[],
      python: typeof header.python === 'string' ? header.python : '',
      cwd: typeof header.cwd === 'string' ? header.cwd : '',
    },
    memory: {
      source: mem.source === undefined ? 'none' : oneOf(mem.source, MEMORY_SOURCES, 'memory.source', 1),
      limitBytes: memNum('limitBytes'),
      workingSetBytes: memNum('workingSetBytes'),
      availableBytes: memNum('availableBytes'),
      swapBytes: memNum('swapBytes'),
      floorBytes: memNum('floorBytes'),
    },
    stacks: bounded(rawPeak),
    currentStacks: rawCurrent.length > 0 || trigger === 'oom' || trigger === 'request' ? bounded(rawCurrent) : null,
    ...(isTruncated(truncation) ? { truncation } : {}),
    ...(rawFailed ? { failedAllocation: { count: rawFailed.times, ...toStack(rawFailed) } } : {}),
    sampling: header.sampleRateBytes ? { rateBytes: count(header, 'sampleRateBytes', 1) } : null,
    ...(timeline ? { timeline } : {}),
  };
}

/**
 * Reads and parses a raw dump file: a regular file, no symlink, at most
 * MAX_DUMP_BYTES (HW_ERR_INPUT_UNREADABLE / HW_ERR_INPUT_TOO_LARGE otherwise).
 */
export async function readDump(path: string): Promise<ProfileData> {
  return parseDump((await readRegularFile(path, MAX_DUMP_BYTES)).toString('utf8'));
}
