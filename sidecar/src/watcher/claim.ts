/**
 * A run dir belongs to one `highwater run` at a time (docs/security.md). The
 * run claims it with a lock file created exclusively (`highwater.lock`, the
 * claimer's pid); a lock whose pid is alive means another run is using it
 * (HW_ERR_RUN_DIR_BUSY); a lock of a dead pid is stale and is taken over.
 * What an earlier run left (files of processes that are gone) is removed, so
 * its dumps are not rendered again nor its pids announced; at the end the run
 * removes what its own processes left.
 */
import { closeSync, openSync, readdirSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { HighwaterError } from '../errors.js';
import { CREATE_FLAGS, READ_FLAGS } from '../report/safe-file.js';

export const LOCK_NAME = 'highwater.lock';

/** Run-dir entries the shim makes for process `pid`: state file, socket, dumps (complete or being written). */
const PER_PID = /^hw-(\d+)(?:\.state|\.sock|-\d+\.dump(?:\.tmp)?)$/;
/** The shims' shared container file, and the private file its creator publishes it from. */
const CONTAINER_FILE = 'hw-container';
const CONTAINER_TMP = /^hw-container\.(\d+)\.tmp$/;

export function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

function readLockPid(path: string): number | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(32);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const m = /^(\d+)\n?$/.exec(buf.toString('latin1', 0, n));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export interface RunDirClaim {
  runDir: string;
  /** Files an earlier run left, removed when the claim was taken. */
  removedStale: string[];
  /**
   * Give the run dir up: remove the lock and, with `removeLeftovers`, what
   * processes that are gone left behind (keep it when it is the only copy of
   * raw data that could not be rendered). Never throws.
   */
  release(opts: { removeLeftovers: boolean }): void;
}

/** Removes the files of processes that are no longer alive; returns their names. */
function removeLeftovers(runDir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(runDir);
  } catch {
    return removed;
  }
  let liveProcess = false;
  for (const name of names) {
    const m = PER_PID.exec(name) ?? CONTAINER_TMP.exec(name);
    if (!m) continue;
    if (isAlive(Number(m[1]))) {
      liveProcess = true;
      continue;
    }
    try {
      unlinkSync(join(runDir, name)); // unlink removes a link itself, never its target
      removed.push(name);
    } catch {
      // gone already
    }
  }
  // The container file (docs/protocol.md "Container file") once no tracked process is left to share it.
  if (!liveProcess && names.includes(CONTAINER_FILE)) {
    try {
      unlinkSync(join(runDir, CONTAINER_FILE));
      removed.push(CONTAINER_FILE);
    } catch {
      // gone already
    }
  }
  return removed;
}

/** Claim `runDir` (which must exist) for this process. */
export function claimRunDir(runDir: string): RunDirClaim {
  const lock = join(runDir, LOCK_NAME);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lock, CREATE_FLAGS, 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' || attempt >= 3) {
        throw new HighwaterError('HW_ERR_RUN_DIR_BUSY', `cannot claim the run dir ${runDir}: ${code ?? String(e)}`, { cause: e });
      }
      const owner = readLockPid(lock);
      if (owner !== undefined && owner !== process.pid && isAlive(owner)) {
        throw new HighwaterError('HW_ERR_RUN_DIR_BUSY', `the run dir ${runDir} is in use by another highwater run (pid ${owner})`);
      }
      try {
        unlinkSync(lock); // stale: its owner is gone (or the lock is not one)
      } catch {
        // someone else removed it first; try again
      }
    }
  }
  const removedStale = removeLeftovers(runDir);
  let released = false;
  return {
    runDir,
    removedStale,
    release({ removeLeftovers: clean }) {
      if (released) return;
      released = true;
      if (clean) removeLeftovers(runDir);
      try {
        if (readLockPid(lock) === process.pid) unlinkSync(lock);
      } catch {
        // gone with the run dir
      }
    },
  };
}
