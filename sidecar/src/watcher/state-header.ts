/**
 * The status part of a state file's 4096-byte header (docs/protocol.md
 * "State file"): what a watcher in another container reads instead of the
 * process's cgroup. Parsing (pure) is apart from reading.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Readings, ReadingsSource } from '../memory/read.js';
import { fileKind, READ_FLAGS } from '../report/safe-file.js';
import {
  HEADER,
  OOM_REASONS,
  READINGS_SOURCES,
  readArgv,
  readHeaderText,
  readingOffset,
  STATE_HEADER_SIZE,
  STATE_MAGIC,
  STATE_VERSION,
} from '../state/layout.js';
const SOURCES: ReadonlyArray<ReadingsSource | 'none'> = READINGS_SOURCES;

export interface StateHeader {
  pid: number;
  currentBytes: number;
  peakBytes: number;
  /** Wall clock ms of the shim's last status update (every 250 ms while it runs). */
  updatedMs: number;
  tracking: boolean;
  floorBytes: number;
  readingsSource: ReadingsSource | 'none';
  limitBytes: number;
  usageBytes: number;
  inactiveFileBytes: number;
  /** Active page cache (0 from shims that do not publish it). */
  activeFileBytes: number;
  workingSetBytes: number;
  hostAvailableBytes: number;
  availableBytes: number;
  swapBytes: number;
  oomReason: (typeof OOM_REASONS)[number];
  /** 0 while running; 0x100 + code when the shim itself ended the process. */
  exitStatus: number;
  python: string;
  /** /proc/self/cmdline of the process, NUL-separated fields (possibly cut short at 1024 bytes). */
  argv: string[];
  cwd: string;
}

/** Parses the header; undefined when it is not (yet) a version-1 state file. */
export function parseStateHeader(buf: Buffer): StateHeader | undefined {
  if (buf.length < STATE_HEADER_SIZE) return undefined;
  const magic = buf.toString('latin1', HEADER.magic, HEADER.magic + STATE_MAGIC.length);
  if (magic !== STATE_MAGIC || buf.readUInt32LE(HEADER.version) !== STATE_VERSION) return undefined;
  const u = (off: number): number => Number(buf.readBigUInt64LE(off));
  const r = (field: Parameters<typeof readingOffset>[0]): number => u(readingOffset(field));
  return {
    pid: u(HEADER.pid),
    currentBytes: u(HEADER.currentBytes),
    peakBytes: u(HEADER.peakBytes),
    updatedMs: u(HEADER.updatedMs),
    tracking: u(HEADER.tracking) === 1,
    floorBytes: u(HEADER.floorBytes),
    limitBytes: r('limitBytes'),
    usageBytes: r('usageBytes'),
    inactiveFileBytes: r('inactiveFileBytes'),
    activeFileBytes: u(HEADER.activeFileBytes),
    workingSetBytes: r('workingSetBytes'),
    hostAvailableBytes: r('hostAvailableBytes'),
    availableBytes: r('availableBytes'),
    swapBytes: r('swapBytes'),
    readingsSource: SOURCES[u(HEADER.readingsSource)] ?? 'none',
    oomReason: OOM_REASONS[u(HEADER.oomReason)] ?? null,
    exitStatus: u(HEADER.exitStatus),
    python: readHeaderText(buf, 'python'),
    argv: readArgv(buf),
    cwd: readHeaderText(buf, 'cwd'),
  };
}

export interface StateFileHeader {
  header: StateHeader;
  /** Identity of the file: a new process reusing the pid makes a new file. */
  ino: number;
}

/**
 * Reads only the header. undefined when the file is gone, short or not (yet)
 * a state file; `{ problem }` when it cannot be read and will not become
 * readable by waiting (EACCES, a symlink, a FIFO, a directory...). Opened
 * without following a link and without blocking, checked to be a regular file.
 */
export function readStateHeader(path: string): StateFileHeader | { problem: string } | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    return { problem: code === 'ELOOP' ? 'a symbolic link (never followed)' : (code ?? String(e)) };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { problem: `${fileKind(st)}, not a regular file` };
    const buf = Buffer.alloc(STATE_HEADER_SIZE);
    const n = readSync(fd, buf, 0, STATE_HEADER_SIZE, 0);
    const header = parseStateHeader(buf.subarray(0, n));
    return header ? { header, ino: st.ino } : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Readings as the shim published them, for the heuristics. undefined when
 * the shim had none (`readingsSource` none). The shim does not publish host
 * MemTotal, so a percentage floor without a cgroup limit falls back to the
 * absolute floor.
 */
export function readingsFromHeader(h: StateHeader): Readings | undefined {
  if (h.readingsSource === 'none') return undefined;
  return {
    source: h.readingsSource,
    limitBytes: h.limitBytes,
    usageBytes: h.usageBytes,
    inactiveFileBytes: h.inactiveFileBytes,
    workingSetBytes: h.workingSetBytes,
    hostAvailableBytes: h.hostAvailableBytes,
    hostTotalBytes: 0,
    availableBytes: h.availableBytes,
    swapBytes: h.swapBytes,
    activeFileBytes: h.activeFileBytes,
  };
}
