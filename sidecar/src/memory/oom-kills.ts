/**
 * The kernel's OOM-kill counter of a memory cgroup (v1 `memory.oom_control`,
 * v2 `memory.events`, both with an `oom_kill N` line). When it moves while
 * our child dies by a signal, the kernel's OOM killer did it — even when the
 * status says SIGSEGV: the OOM reaper can take a dying process's memory while
 * one of its threads still runs, and that thread then faults.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { locateMemoryCgroup, type FsRoots } from './cgroup.js';

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
