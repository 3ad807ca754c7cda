/** Output directory checks and opening the report in a browser. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { HighwaterError } from '../errors.js';

/**
 * Make sure reports can be written under `dir` before the program starts:
 * create it (with parents) and write a probe file. Returns whether the
 * directory was created now (so an unused one can be removed at the end).
 * Raises `HW_ERR_OUTPUT_UNWRITABLE` naming the path.
 */
export function ensureWritableDir(dir: string): { created: boolean } {
  const abs = resolve(dir);
  const created = !existsSync(abs);
  const probe = join(abs, `.highwater-probe-${process.pid}-${Date.now()}`);
  try {
    mkdirParents(abs);
    // Exclusive (O_EXCL: a name planted there, even a symlink, is never written through).
    writeFileSync(probe, '', { flag: 'wx', mode: 0o600 });
    unlinkSync(probe);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new HighwaterError('HW_ERR_OUTPUT_UNWRITABLE', `cannot write reports to ${dir}: ${code}`, { cause: e });
  }
  return { created };
}

/**
 * mkdir -p without `{ recursive: true }`: Node 24's recursive mkdir loops
 * forever on a path under /proc (mkdir there fails with ENOENT although the
 * parent exists). Create each missing component once instead.
 */
export function mkdirParents(abs: string): void {
  const missing: string[] = [];
  let p = abs;
  while (!existsSync(p)) {
    missing.unshift(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const dir of missing) mkdirSync(dir);
}

/** Remove `dir` if it is empty (an output directory that received nothing). */
export function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not empty or already gone
  }
}

/** Whether a graphical session is there to open a browser in. */
export function hasDisplay(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.DISPLAY || env.WAYLAND_DISPLAY);
}

/** Open a file with xdg-open, detached; failures are ignored (the path is printed anyway). */
export function openInBrowser(file: string): void {
  try {
    const child = spawn('xdg-open', [file], { detached: true, stdio: 'ignore' });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no xdg-open: nothing to do
  }
}
