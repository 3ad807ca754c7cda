/**
 * highwater.api.profile() with children (issue 12): the processes started
 * inside the call track themselves and, at their exit, write
 * `child-<pid>.dump` into the call's children directory (docs/api.md,
 * docs/multiprocess.md). Their dumps and the call's own dump become one
 * report whose flamegraph root splits by process, as a container-wide
 * report does. Each process shows its own peak: the dumps hold no common
 * moment (`peakSource: own-peaks`). With no child dump the report is the
 * call's alone, exactly as before.
 *
 * The directory is the program's (the run dir's): only regular files named
 * child-<pid>.dump are read (lstat, no link followed), at most MAX_CHILDREN,
 * each through the dump reader's own checks; an unreadable one is left out.
 *
 * Children that end without a dump (a multiprocessing fork worker ends
 * through os._exit, a pool's terminate() ends its workers with SIGTERM) are
 * taken from their state files in the run dir (endedChildStates): under
 * `highwater python` the watcher leaves those to the call
 * (rundir-watcher.ts), and the call removes the ones it took.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerCollector } from '../watcher/container.js';
import { readStateArea } from '../watcher/live-sample.js';
import { parseProcessFacts } from '../watcher/process-facts.js';
import { listRunDir } from '../watcher/rundir.js';
import { parseStateHeader } from '../watcher/state-header.js';
import { readDump } from './dump.js';
import type { ReportJson } from './model.js';
import { renderDumpFile, type RenderOptions } from './render.js';

const CHILD_DUMP = /^child-(\d+)\.dump$/;
/** More children than this in one call: the first ones by pid are kept. */
export const MAX_CHILDREN = 256;

/** The children's complete dumps in `dir` (pid, path), by pid. */
export function childDumps(dir: string): Array<{ pid: number; path: string }> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ pid: number; path: string }> = [];
  for (const name of names) {
    const m = CHILD_DUMP.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    try {
      if (!lstatSync(path).isFile()) continue;
    } catch {
      continue;
    }
    out.push({ pid: Number(m[1]), path });
  }
  return out.sort((a, b) => a.pid - b.pid).slice(0, MAX_CHILDREN);
}

/** The call's process and when it started tracking: which state files in the run dir are its children's. */
export interface ChildStates {
  runDir: string;
  /** Wall-clock ms at the start of the call: a process whose state file began earlier is not its child. */
  sinceMs: number;
}

/**
 * True while `pid` is the process that started at `startTicks` (clock ticks
 * since boot, /proc/<pid>/stat field 22) and is not a zombie.
 */
function stillRunning(pid: number, startTicks: number, procRoot = '/proc'): boolean {
  let stat: string;
  try {
    stat = readFileSync(join(procRoot, String(pid), 'stat'), 'latin1');
  } catch {
    return false;
  }
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return false;
  return startTicks === 0 || Number(fields[19]) === startTicks;
}

/**
 * The state files of processes started inside the call (`callPid`'s tracked
 * children and their own children, begun at or after `sinceMs`) that ended
 * still tracking, i.e. without a dump of their own; by pid. A child still
 * running is left out (its own children are not). Each file is opened without following a link, must be
 * a regular state file whose header names the pid of its name.
 */
export function endedChildStates(states: ChildStates, callPid: number, skip: ReadonlySet<number>): Array<{ pid: number; path: string; header: Buffer }> {
  // Every process begun inside the call, running or not: a forkserver's
  // workers descend from the call through the server, which outlives it.
  const candidates: Array<{ pid: number; path: string; header: Buffer; parents: number[]; take: boolean }> = [];
  for (const [pid, path] of listRunDir(states.runDir).states) {
    if (pid === callPid || skip.has(pid)) continue;
    const head = readStateArea(path, 'none');
    const h = head && parseStateHeader(head.header);
    if (!head || !h || h.pid !== pid) continue;
    const f = parseProcessFacts(head.header);
    if (f.startMs < states.sinceMs) continue;
    const take = h.tracking && !stillRunning(pid, f.startTicks);
    candidates.push({ pid, path, header: head.header, parents: [f.trackedParentPid, f.parentPid].filter((p) => p > 0), take });
  }
  // Descendants of the call only: a worker's parent is the call's process or another of its children.
  const ours = new Set<number>([callPid, ...skip]);
  const taken: Array<{ pid: number; path: string; header: Buffer }> = [];
  for (let grew = true; grew;) {
    grew = false;
    for (const c of candidates) {
      if (ours.has(c.pid) || !c.parents.some((p) => ours.has(p))) continue;
      ours.add(c.pid);
      if (c.take) taken.push({ pid: c.pid, path: c.path, header: c.header });
      grew = true;
    }
  }
  return taken.sort((a, b) => a.pid - b.pid).slice(0, MAX_CHILDREN);
}

export async function renderWithChildren(
  dumpPath: string,
  childrenDir: string,
  outDir: string,
  opts: RenderOptions = {},
  states?: ChildStates,
): Promise<{ dir: string; report: ReportJson; takenStates: string[] }> {
  const children = childDumps(childrenDir);
  const top = await readDump(dumpPath);
  const ended = states ? endedChildStates(states, top.process.pid, new Set(children.map((c) => c.pid))) : [];
  if (children.length === 0 && ended.length === 0) return { ...(await renderDumpFile(dumpPath, outDir, opts)), takenStates: [] };
  const collector = new ContainerCollector({ runDir: childrenDir, topPid: top.process.pid });
  await collector.takeDump(top.process.pid, dumpPath);
  for (const c of children) {
    if (c.pid === top.process.pid) continue;
    try {
      await collector.takeDump(c.pid, c.path);
    } catch {
      // cut short or not a dump: that child is left out, the report is still made
    }
  }
  const takenStates: string[] = [];
  for (const c of ended) {
    try {
      await collector.takeEndedState(c.pid, c.path, c.header);
      takenStates.push(c.path);
    } catch {
      // not a readable state file: that child is left out, the report is still made
    }
  }
  return { ...(await collector.render(outDir, opts, { trigger: 'api', timeMs: top.timeMs })), takenStates };
}
