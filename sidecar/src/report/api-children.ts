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
 */
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerCollector } from '../watcher/container.js';
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

export async function renderWithChildren(
  dumpPath: string,
  childrenDir: string,
  outDir: string,
  opts: RenderOptions = {},
): Promise<{ dir: string; report: ReportJson }> {
  const children = childDumps(childrenDir);
  if (children.length === 0) return renderDumpFile(dumpPath, outDir, opts);
  const top = await readDump(dumpPath);
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
  return collector.render(outDir, opts, { trigger: 'api', timeMs: top.timeMs });
}
