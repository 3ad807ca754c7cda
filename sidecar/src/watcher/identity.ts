/**
 * Is the pid a state file names the same process here? A watcher in another
 * container (sidecar mode) sees other processes under the same pids, so the
 * pid alone proves nothing: /proc/<pid>/cmdline must match the argv the shim
 * recorded (the shim's copy may be cut short at 1024 bytes).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Identity = 'same' | 'other' | 'gone';

/** Pure: the recorded argv (NUL-joined, maybe truncated) against a cmdline's raw text. */
export function cmdlineMatches(recorded: string[], cmdline: string): boolean {
  if (recorded.length === 0) return false;
  const want = recorded.join('\0');
  const have = cmdline.replace(/\0+$/, '');
  return have === want || (want.length >= 1000 && have.startsWith(want));
}

/** 'gone' when there is no such process here or it is a zombie. */
export function processIdentity(procRoot: string, pid: number, recorded: string[]): Identity {
  let stat: string;
  try {
    stat = readFileSync(join(procRoot, String(pid), 'stat'), 'utf8');
  } catch {
    return 'gone';
  }
  const close = stat.lastIndexOf(')');
  const state = close >= 0 ? stat.charAt(close + 2) : '';
  if (state === 'Z' || state === 'X') return 'gone';
  try {
    return cmdlineMatches(recorded, readFileSync(join(procRoot, String(pid), 'cmdline'), 'utf8')) ? 'same' : 'other';
  } catch {
    return 'gone';
  }
}

/**
 * When `pid` started (/proc/<pid>/stat's starttime, clock ticks since boot),
 * or undefined when there is no such process here. An exec, or a program that
 * rewrites its own cmdline (setproctitle: gunicorn's and celery's workers),
 * changes the cmdline but not this; a new process under a reused pid has
 * another.
 */
export function processStartTicks(procRoot: string, pid: number): number | undefined {
  try {
    const stat = readFileSync(join(procRoot, String(pid), 'stat'), 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) && ticks > 0 ? ticks : undefined;
  } catch {
    return undefined;
  }
}
