/**
 * Pure parsers over the text of /proc and cgroup files. No I/O here: the
 * readers in read.ts and cgroup.ts fetch the text, these functions only parse
 * it. Malformed input raises `HW_ERR_READING`; a key that is simply absent is
 * `undefined`, so the reader can decide how to degrade.
 */
import { HighwaterError } from '../errors.js';

export interface Meminfo {
  memTotalBytes: number | undefined;
  /** `MemAvailable`, or undefined on kernels older than 3.14 that lack it. */
  memAvailableBytes: number | undefined;
  memFreeBytes: number | undefined;
  buffersBytes: number | undefined;
  cachedBytes: number | undefined;
  swapTotalBytes: number | undefined;
  swapFreeBytes: number | undefined;
}

function readingError(what: string, detail: string): HighwaterError {
  return new HighwaterError('HW_ERR_READING', `${what}: ${detail}`);
}

/** `/proc/meminfo`: values are in kB (KiB) and returned in bytes. */
export function parseMeminfo(text: string): Meminfo {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]) * 1024);
  }
  const memTotalBytes = kb.get('MemTotal');
  if (memTotalBytes === undefined) throw readingError('/proc/meminfo', 'no MemTotal line');
  return {
    memTotalBytes,
    memAvailableBytes: kb.get('MemAvailable'),
    memFreeBytes: kb.get('MemFree'),
    buffersBytes: kb.get('Buffers'),
    cachedBytes: kb.get('Cached'),
    swapTotalBytes: kb.get('SwapTotal'),
    swapFreeBytes: kb.get('SwapFree'),
  };
}

/**
 * Host available memory: `MemAvailable`, or on kernels without it the usual
 * approximation MemFree + Buffers + Cached.
 */
export function hostAvailableBytes(m: Meminfo): number | undefined {
  if (m.memAvailableBytes !== undefined) return m.memAvailableBytes;
  if (m.memFreeBytes === undefined) return undefined;
  return m.memFreeBytes + (m.buffersBytes ?? 0) + (m.cachedBytes ?? 0);
}

export interface MemoryStat {
  /** v1 `total_inactive_file` (hierarchical) or `inactive_file`; v2 `inactive_file`. */
  inactiveFileBytes: number | undefined;
  /** v1 `total_active_file` or `active_file`; v2 `active_file`. */
  activeFileBytes: number | undefined;
  /** v2 `anon`; v1 `total_rss` or `rss`. */
  anonBytes: number | undefined;
  /** v2 `file`; v1 `total_cache` or `cache`. */
  fileBytes: number | undefined;
  /** v1 `total_swap` or `swap` (v2's memory.stat has no swap usage; see memory.swap.current). */
  swapBytes: number | undefined;
  /** Every `key value` pair of the file. */
  raw: Map<string, number>;
}

/** `memory.stat` of cgroup v1 or v2: `key value` lines. */
export function parseMemoryStat(text: string): MemoryStat {
  const raw = new Map<string, number>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    const m = /^([a-z0-9_]+)\s+(\d+)$/.exec(t);
    if (!m) throw readingError('memory.stat', `unexpected line ${JSON.stringify(t.slice(0, 80))}`);
    raw.set(m[1]!, Number(m[2]));
  }
  if (raw.size === 0) throw readingError('memory.stat', 'empty');
  const first = (...keys: string[]): number | undefined => {
    for (const k of keys) if (raw.has(k)) return raw.get(k);
    return undefined;
  };
  return {
    inactiveFileBytes: first('total_inactive_file', 'inactive_file'),
    activeFileBytes: first('total_active_file', 'active_file'),
    anonBytes: first('anon', 'total_rss', 'rss'),
    fileBytes: first('file', 'total_cache', 'cache'),
    swapBytes: first('total_swap', 'swap'),
    raw,
  };
}

export interface ProcCgroupEntry {
  /** Hierarchy id; 0 for the cgroup v2 unified hierarchy. */
  id: number;
  /** Controllers of a v1 hierarchy (`memory`, `cpu,cpuacct`, `name=systemd`); empty for v2. */
  controllers: string[];
  /** Path of the process's cgroup inside that hierarchy, as the process sees it. */
  path: string;
}

/** `/proc/<pid>/cgroup`: lines `id:controllers:path`; the path may itself contain ':'. */
export function parseProcCgroup(text: string): ProcCgroupEntry[] {
  const out: ProcCgroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const a = line.indexOf(':');
    const b = a < 0 ? -1 : line.indexOf(':', a + 1);
    if (b < 0 || !/^\d+$/.test(line.slice(0, a))) {
      throw readingError('/proc/<pid>/cgroup', `unexpected line ${JSON.stringify(line.slice(0, 80))}`);
    }
    const ctl = line.slice(a + 1, b);
    out.push({ id: Number(line.slice(0, a)), controllers: ctl === '' ? [] : ctl.split(','), path: line.slice(b + 1) });
  }
  return out;
}

/** The v1 hierarchy that has the memory controller, if any. */
export function v1MemoryEntry(entries: ProcCgroupEntry[]): ProcCgroupEntry | undefined {
  return entries.find((e) => e.controllers.includes('memory'));
}

/** The cgroup v2 entry (`0::/path`), if any. */
export function v2Entry(entries: ProcCgroupEntry[]): ProcCgroupEntry | undefined {
  return entries.find((e) => e.id === 0 && e.controllers.length === 0);
}

export interface Mount {
  /** The root of the mount within its filesystem (for cgroups: the cgroup path mounted). */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string[];
}

/** Undo mountinfo's octal escapes (`\040` for a space, ...). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** `/proc/<pid>/mountinfo` (proc(5)): `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`. */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const f = line.trim().split(/\s+/);
    const sep = f.indexOf('-', 6);
    if (f.length < 7 || sep < 0 || f.length < sep + 3) {
      throw readingError('/proc/<pid>/mountinfo', `unexpected line ${JSON.stringify(line.slice(0, 80))}`);
    }
    out.push({
      root: unescapeMount(f[3]!),
      mountPoint: unescapeMount(f[4]!),
      fsType: f[sep + 1]!,
      source: unescapeMount(f[sep + 2]!),
      superOptions: (f[sep + 3] ?? '').split(','),
    });
  }
  return out;
}

export interface CgroupMounts {
  /** The cgroup2 (unified) mount, if any. */
  v2: Mount | undefined;
  /** The cgroup v1 mount carrying the `memory` controller, if any. */
  v1Memory: Mount | undefined;
}

/** Pick the cgroup2 mount and the v1 `memory` mount; the last one listed wins (it shadows earlier ones). */
export function findCgroupMounts(mounts: Mount[]): CgroupMounts {
  let v2: Mount | undefined;
  let v1Memory: Mount | undefined;
  for (const m of mounts) {
    if (m.fsType === 'cgroup2') v2 = m;
    else if (m.fsType === 'cgroup' && m.superOptions.includes('memory')) v1Memory = m;
  }
  return { v2, v1Memory };
}

/**
 * Values at or above this are "no limit": cgroup v1 writes
 * `PAGE_COUNTER_MAX * page size` (9223372036854771712 with 4 KiB pages; other
 * page sizes give other huge numbers). No machine has 1 EiB of memory.
 */
export const NO_LIMIT_THRESHOLD = 2 ** 60;

/**
 * `memory.limit_in_bytes` (v1) or `memory.max` (v2). Returns the limit in
 * bytes, or 0 for no limit: v2 `max`, v1's huge sentinel values, and `0`
 * (some Docker versions report 0 for "unlimited").
 */
export function parseLimit(text: string): number {
  const t = text.trim();
  if (t === 'max') return 0;
  if (!/^\d+$/.test(t)) throw readingError('memory limit', `not a number: ${JSON.stringify(t.slice(0, 40))}`);
  const n = Number(t);
  return n >= NO_LIMIT_THRESHOLD ? 0 : n;
}

/** A file holding one byte count (`memory.current`, `memory.usage_in_bytes`, ...). */
export function parseBytes(text: string, what: string): number {
  const t = text.trim();
  if (!/^\d+$/.test(t)) throw readingError(what, `not a number: ${JSON.stringify(t.slice(0, 40))}`);
  return Number(t);
}

/** `VmSwap` of `/proc/<pid>/status` in bytes; undefined when absent (kernel threads, old kernels). */
export function parseProcStatusVmSwap(text: string): number | undefined {
  const m = /^VmSwap:\s+(\d+)\s+kB\s*$/m.exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}
