/**
 * Raw dump reader: JSON Lines (docs/protocol.md "Raw dump") → ProfileData.
 * `parseDump` is pure; `readDump` only adds the file read.
 */
import { readFile } from 'node:fs/promises';
import { HighwaterError } from '../errors.js';
import type { Frame, MemorySource, OomReason, ProfileData, Stack, Timeline, Trigger } from './model.js';
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
    if (
      !Array.isArray(f) ||
      f.length !== 2 ||
      !f.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)
    ) {
      throw invalid(lineNo, '"frames" entries must be [funcId, line]');
    }
  }
  return v as RawFrames;
}

export function parseDump(text: string): ProfileData {
  const lines = text.split('\n');
  // A trailing newline (or CRLF endings) must not count as a line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  for (let i = 0; i < lines.length; i++) lines[i] = lines[i]!.replace(/\r$/, '');

  // Truncation is decided first: a writer that died mid-line leaves a last
  // line that is not JSON, and that is a truncated dump, not an invalid one.
  // A complete first line that is not a header is invalid regardless.
  const truncated = () =>
    new HighwaterError('HW_ERR_DUMP_TRUNCATED', `raw dump is truncated: read ${lines.length} lines, no end line`);
  if (lines.length === 0) throw truncated();
  const lastIsEnd = isEndLine(lines[lines.length - 1]!);
  if (lines.length === 1 && !lastIsEnd) throw truncated();
  const header = parseLine(lines[0]!, 1);
  if (header.type !== 'header' || header.format !== 'highwater-dump') {
    throw invalid(1, 'missing header (expected {"type":"header","format":"highwater-dump",...})');
  }
  if (!lastIsEnd) throw truncated();
  if (header.version !== 1) throw invalid(1, `unknown version ${JSON.stringify(header.version)} (expected 1)`);

  const funcs = new Map<number, { file: string; name: string }>();
  const sources = new Map<string, string>();
  const rawPeak: Array<{ bytes: number; frames: RawFrames; lineNo: number }> = [];
  const rawCurrent: typeof rawPeak = [];
  let rawOom: (typeof rawPeak)[number] | null = null;
  let stackLines = 0;
  let timeline: Timeline | undefined;

  for (let i = 1; i < lines.length - 1; i++) {
    const lineNo = i + 1;
    const o = parseLine(lines[i]!, lineNo);
    switch (o.type) {
      case 'func':
        funcs.set(count(o, 'id', lineNo), { file: str(o, 'file', lineNo), name: str(o, 'name', lineNo) });
        break;
      case 'stack': {
        stackLines++;
        const s = { bytes: count(o, 'bytes', lineNo), frames: rawFrames(o, lineNo), lineNo };
        const snap = oneOf(o.snapshot, ['peak', 'current'], 'snapshot', lineNo);
        (snap === 'peak' ? rawPeak : rawCurrent).push(s);
        break;
      }
      case 'oomAllocation':
        rawOom = { bytes: count(o, 'bytes', lineNo), frames: rawFrames(o, lineNo), lineNo };
        break;
      case 'timeline':
        timeline = timelineFromDumpLine(o, lineNo);
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
  }

  const endNo = lines.length;
  const end = parseLine(lines[endNo - 1]!, endNo);
  const expected = { funcs: funcs.size, stacks: stackLines, sources: sources.size };
  for (const [key, actual] of Object.entries(expected)) {
    if (end[key] !== undefined && count(end, key, endNo) !== actual) {
      throw invalid(endNo, `end line says ${String(end[key])} ${key}, the dump holds ${actual}`);
    }
  }

  // One shared Frame object per (func, line): less memory, and the stack
  // helpers recognise equal frames by identity without building string keys.
  const frameCache = new Map<string, Frame>();
  const resolve = (raw: RawFrames, lineNo: number): Frame[] =>
    raw.map(([id, line]) => {
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
  const toStack = (s: (typeof rawPeak)[number]): Stack => ({ bytes: s.bytes, frames: resolve(s.frames, s.lineNo) });

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
    timeMs: header.timeMs === undefined ? 0 : count(header, 'timeMs', 1),
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
    stacks: rawPeak.map(toStack),
    currentStacks: rawCurrent.length > 0 || trigger === 'oom' || trigger === 'request' ? rawCurrent.map(toStack) : null,
    ...(timeline ? { timeline } : {}),
  };
}

/** Reads and parses a raw dump file; read errors propagate as Node errors. */
export async function readDump(path: string): Promise<ProfileData> {
  return parseDump(await readFile(path, 'utf8'));
}
