/**
 * The run dir as the watcher sees it (docs/protocol.md): `hw-<pid>.state`,
 * `hw-<pid>.sock` and complete dumps `*.dump` (never `*.dump.tmp`).
 */
import { readdirSync, type Dirent } from 'node:fs';
import { fileKind } from '../report/safe-file.js';
import { join } from 'node:path';

export interface DumpFile {
  path: string;
  /** From `hw-<pid>-<seq>.dump`; undefined for other `*.dump` names. */
  pid: number | undefined;
  seq: number | undefined;
}

export interface RunDirListing {
  /** pid → path of `hw-<pid>.state` */
  states: Map<number, string>;
  /** pid → path of `hw-<pid>.sock` */
  sockets: Map<number, string>;
  /** Complete dumps, by pid then sequence number. */
  dumps: DumpFile[];
  /**
   * Entries named like a state file, socket or dump that are not of that
   * type (a symlink, a FIFO, a device, a directory): never opened.
   */
  skipped: Array<{ path: string; kind: string }>;
}

const STATE = /^hw-(\d+)\.state$/;
const SOCK = /^hw-(\d+)\.sock$/;
const DUMP = /^hw-(\d+)-(\d+)\.dump$/;

/**
 * List the run dir. A missing or unreadable run dir lists as empty. The type
 * comes from the directory entry itself (lstat, never following a link):
 * state files and dumps must be regular files, sockets sockets. The readers
 * check again on the descriptor they open, since a name can be swapped.
 */
export function listRunDir(dir: string): RunDirListing {
  const out: RunDirListing = { states: new Map(), sockets: new Map(), dumps: [], skipped: [] };
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    const name = entry.name;
    let m: RegExpExecArray | null;
    const isState = STATE.exec(name);
    const isSock = SOCK.exec(name);
    const isDump = name.endsWith('.dump');
    if (!isState && !isSock && !isDump) continue;
    if (isSock ? !entry.isSocket() : !entry.isFile()) {
      out.skipped.push({ path: join(dir, name), kind: fileKind(entry) });
      continue;
    }
    if ((m = isState)) out.states.set(Number(m[1]), join(dir, name));
    else if ((m = isSock)) out.sockets.set(Number(m[1]), join(dir, name));
    else {
      const d = DUMP.exec(name);
      out.dumps.push({ path: join(dir, name), pid: d ? Number(d[1]) : undefined, seq: d ? Number(d[2]) : undefined });
    }
  }
  out.dumps.sort((a, b) => (a.pid ?? -1) - (b.pid ?? -1) || (a.seq ?? -1) - (b.seq ?? -1) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return out;
}
