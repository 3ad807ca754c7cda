/**
 * Take the memory readings of a process: its memory cgroup (v1 or v2) when it
 * has one, the host otherwise. Reads are synchronous: procfs and cgroupfs
 * files are generated in memory and never block on a disk.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HighwaterError, isHighwaterError } from '../errors.js';
import { locateMemoryCgroup, readText, type FsRoots } from './cgroup.js';
import { hostAvailableBytes, parseBytes, parseLimit, parseMeminfo, parseMemoryStat, parseProcStatusVmSwap } from './parse.js';

export type ReadingsSource = 'cgroup-v1' | 'cgroup-v2' | 'host';

export interface Readings {
  source: ReadingsSource;
  /** cgroup limit; 0 = no limit. */
  limitBytes: number;
  /** cgroup usage (v1 memory.usage_in_bytes, v2 memory.current); host: MemTotal − MemAvailable. */
  usageBytes: number;
  inactiveFileBytes: number;
  /**
   * Page cache on the active list. Part of the working set (kubelet counts
   * it), but the kernel drops it under pressure before it OOM-kills, so the
   * low-available rule does not count it as used (heuristics.ts).
   */
  activeFileBytes?: number;
  /** usage − inactive_file, as kubelet and cAdvisor compute it. */
  workingSetBytes: number;
  hostAvailableBytes: number;
  hostTotalBytes: number;
  /** min(host available, limit − working set); host available when there is no limit. */
  availableBytes: number;
  /** Swap used by the cgroup (or, host-only, by the process). */
  swapBytes: number;
}

/** The part of a logger this module needs (a pino Logger fits). */
export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

export interface ReadOptions extends FsRoots {
  logger?: WarnLogger;
  /**
   * Warning keys already given; pass the same set on every call of a polling
   * loop so a degraded reading is reported once, not every tick.
   */
  warned?: Set<string>;
}

/**
 * The memory total the floor is a percentage of: the cgroup limit if any
 * (capped by host RAM), else host RAM. The shim owns the floor (guard.c, the
 * same formula; docs/protocol.md): the watcher uses this only to judge a
 * process whose shim has not published one yet.
 */
export function totalBytes(r: Readings): number {
  return r.limitBytes > 0 ? Math.min(r.limitBytes, r.hostTotalBytes || r.limitBytes) : r.hostTotalBytes;
}

interface CgroupPart {
  source: 'cgroup-v1' | 'cgroup-v2';
  limitBytes: number;
  usageBytes: number;
  inactiveFileBytes: number;
  activeFileBytes: number;
  swapBytes: number;
}

function readOptionalBytes(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  return parseBytes(readText(path), path);
}

function readV2(dir: string): CgroupPart | null {
  // The real root cgroup has no memory.max: it is the host.
  if (!existsSync(join(dir, 'memory.max')) && !existsSync(join(dir, 'memory.current'))) return null;
  const usageBytes = parseBytes(readText(join(dir, 'memory.current')), join(dir, 'memory.current'));
  const limitBytes = parseLimit(readText(join(dir, 'memory.max')));
  const stat = parseMemoryStat(readText(join(dir, 'memory.stat')));
  if (stat.inactiveFileBytes === undefined) {
    throw new HighwaterError('HW_ERR_READING', `${join(dir, 'memory.stat')}: no inactive_file`);
  }
  const swapBytes = readOptionalBytes(join(dir, 'memory.swap.current')) ?? 0;
  return {
    source: 'cgroup-v2',
    limitBytes,
    usageBytes,
    inactiveFileBytes: stat.inactiveFileBytes,
    activeFileBytes: stat.activeFileBytes ?? 0,
    swapBytes,
  };
}

function readV1(dir: string): CgroupPart {
  const usageBytes = parseBytes(readText(join(dir, 'memory.usage_in_bytes')), join(dir, 'memory.usage_in_bytes'));
  const limitBytes = parseLimit(readText(join(dir, 'memory.limit_in_bytes')));
  const stat = parseMemoryStat(readText(join(dir, 'memory.stat')));
  if (stat.inactiveFileBytes === undefined) {
    throw new HighwaterError('HW_ERR_READING', `${join(dir, 'memory.stat')}: no total_inactive_file`);
  }
  const memsw = readOptionalBytes(join(dir, 'memory.memsw.usage_in_bytes'));
  const swapBytes = memsw !== undefined ? Math.max(0, memsw - usageBytes) : (stat.swapBytes ?? 0);
  return {
    source: 'cgroup-v1',
    limitBytes,
    usageBytes,
    inactiveFileBytes: stat.inactiveFileBytes,
    activeFileBytes: stat.activeFileBytes ?? 0,
    swapBytes,
  };
}

/**
 * Has `pid` ended: gone from /proc, or a zombie (state Z or X), whose
 * mountinfo and cgroup files fail (EINVAL) though nothing is wrong with the
 * cgroup? Its readings are then host-only without a warning: it ended
 * between the watcher's look at its state file and this read.
 */
function processEnded(procRoot: string, pid: number | 'self'): boolean {
  if (pid === 'self') return false;
  const dir = join(procRoot, String(pid));
  if (!existsSync(dir)) return true;
  try {
    const stat = readText(join(dir, 'stat'));
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return false; /* no stat to say so: an odd /proc, said as before */
  }
}

/**
 * Readings for `pid`. A missing, unreadable or odd cgroup file degrades to
 * host-only readings with one warning. Raises `HW_ERR_READING` only when
 * /proc/meminfo itself cannot be read.
 */
export function readReadings(pid: number | 'self', opts: ReadOptions = {}): Readings {
  const procRoot = opts.procRoot ?? '/proc';
  const warned = opts.warned ?? new Set<string>();
  const warnOnce = (key: string, obj: object, msg: string): void => {
    if (warned.has(key)) return;
    warned.add(key);
    opts.logger?.warn(obj, msg);
  };

  const meminfo = parseMeminfo(readText(join(procRoot, 'meminfo')));
  const hostTotal = meminfo.memTotalBytes ?? 0;
  const hostAvail = hostAvailableBytes(meminfo);
  if (hostAvail === undefined) {
    throw new HighwaterError('HW_ERR_READING', `${join(procRoot, 'meminfo')}: neither MemAvailable nor MemFree`);
  }

  let cg: CgroupPart | null = null;
  try {
    const loc = locateMemoryCgroup(pid, opts);
    if (loc) cg = loc.version === 2 ? readV2(loc.dir) : readV1(loc.dir);
  } catch (e) {
    if (!isHighwaterError(e, 'HW_ERR_READING')) throw e;
    if (!processEnded(procRoot, pid))
      warnOnce('cgroup', { err: e.message }, `cannot read the memory cgroup (${e.message}); using host-wide memory readings only`);
    cg = null;
  }

  if (cg) {
    const workingSetBytes = Math.max(0, cg.usageBytes - cg.inactiveFileBytes);
    const availableBytes = cg.limitBytes > 0 ? Math.min(hostAvail, Math.max(0, cg.limitBytes - workingSetBytes)) : hostAvail;
    return {
      ...cg,
      workingSetBytes,
      hostAvailableBytes: hostAvail,
      hostTotalBytes: hostTotal,
      availableBytes,
    };
  }

  let swapBytes = 0;
  try {
    swapBytes = parseProcStatusVmSwap(readText(join(procRoot, String(pid), 'status'))) ?? 0;
  } catch {
    // the process is gone or status is unreadable: no swap figure
  }
  const used = Math.max(0, hostTotal - hostAvail);
  return {
    source: 'host',
    limitBytes: 0,
    usageBytes: used,
    inactiveFileBytes: 0,
    workingSetBytes: used,
    hostAvailableBytes: hostAvail,
    hostTotalBytes: hostTotal,
    availableBytes: hostAvail,
    swapBytes,
  };
}
