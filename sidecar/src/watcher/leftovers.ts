/**
 * A process that ended while writing a dump (a pool worker stopped by
 * SIGTERM at exit, SIGKILL) leaves `hw-<pid>-<seq>.dump.tmp`: it is never
 * renamed into a dump, so nothing reads it. Once the process is gone, it is
 * removed with the process's other files, so that a long run with many
 * processes keeps its run dir bounded. Only regular files of that exact
 * name (lstat: a link is removed as a link, never followed).
 */
import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export function removeDumpLeftovers(runDir: string, pid: number): string[] {
  const name = new RegExp(`^hw-${pid}-\\d+\\.dump\\.tmp$`);
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(runDir);
  } catch {
    return removed;
  }
  for (const e of entries) {
    if (!name.test(e)) continue;
    const path = join(runDir, e);
    try {
      if (!lstatSync(path).isFile()) continue;
      unlinkSync(path);
      removed.push(path);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}
