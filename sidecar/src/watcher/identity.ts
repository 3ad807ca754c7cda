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
