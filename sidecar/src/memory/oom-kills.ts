/**
 * The kernel's OOM-kill counter of a memory cgroup (v1 `memory.oom_control`,
 * v2 `memory.events`, both with an `oom_kill N` line). When it moves while
 * our child dies by a signal, the kernel's OOM killer did it — even when the
 * status says SIGSEGV: the OOM reaper can take a dying process's memory while
 * one of its threads still runs, and that thread then faults.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { READ_FLAGS } from '../report/safe-file.js';
import { locateMemoryCgroup, type CgroupLocation, type FsRoots } from './cgroup.js';

/** Pure: the `oom_kill` count in memory.oom_control / memory.events text. */
export function parseOomKillCount(text: string): number | undefined {
  const m = /^oom_kill\s+(\d+)\s*$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The OOM-kill count of a process's memory cgroup, or undefined when unknown. */
export function readOomKillCount(pid: number | 'self', roots: FsRoots = {}): number | undefined {
  try {
    const loc = locateMemoryCgroup(pid, roots);
    if (!loc) return undefined;
    const file = loc.version === 1 ? 'memory.oom_control' : 'memory.events';
    return parseOomKillCount(readFileSync(join(loc.dir, file), 'utf8'));
  } catch {
    return undefined;
  }
}

/** The file holding the `oom_kill` count of a memory cgroup. */
export function oomKillFile(loc: CgroupLocation): string {
  return join(loc.dir, loc.version === 1 ? 'memory.oom_control' : 'memory.events');
}

/** memory.events is a handful of short lines: anything longer is not the kernel's file. */
const MAX_EVENTS_BYTES = 4096;

/**
 * The `oom_kill` count in `path`, read as the watcher reads files another
 * party may have planted: never through a symlink, a regular file only, at
 * most 4 KiB, without blocking. Undefined when it cannot be read or says no count.
 */
export function readOomKillCountSafely(path: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, READ_FLAGS);
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(MAX_EVENTS_BYTES);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got <= 0) break;
      n += got;
      if (n === buf.length) return undefined; // too long
    }
    return parseOomKillCount(buf.subarray(0, n).toString('utf8'));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
