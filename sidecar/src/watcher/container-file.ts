/**
 * The run dir's container file `hw-container` (docs/protocol.md "Container
 * file"), written by the shims: the container-wide sum, its peak epoch and the
 * OOM claim. The watcher reads the header only. The file is another party's:
 * read without following a link or blocking, regular files only, 4096 bytes.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { READ_FLAGS } from '../report/safe-file.js';
import type { OomReason } from '../report/model.js';

export const CONTAINER_FILE = 'hw-container';
const MAGIC = 'HWCONT01';
const HEADER_BYTES = 4096;
const OOM_REASONS: ReadonlyArray<OomReason | null> = [null, 'low-available', 'swap', 'failed-allocation'];

export interface ContainerHeader {
  /** Who made this file, when: a file replaced by a new run has another identity. */
  creatorPid: number;
  createdMs: number;
  sumBytes: number;
  /** The highest sum so far, and its epoch (+1 at each rise) and time. */
  peakBytes: number;
  peakEpoch: number;
  peakMs: number;
  processesEver: number;
  /** 0 = no container OOM; else the process that tripped it. */
  oomPid: number;
  oomReason: OomReason | null;
  oomMs: number;
  oomSumBytes: number;
  oomDumpDone: boolean;
  stopperPid: number;
}

/** Pure; undefined when the buffer is not a container file header (wrong magic, version, size). */
export function parseContainerHeader(buf: Buffer): ContainerHeader | undefined {
  if (buf.length < HEADER_BYTES || buf.toString('latin1', 0, 8) !== MAGIC) return undefined;
  if (buf.readUInt32LE(8) !== 1 || buf.readUInt32LE(12) !== HEADER_BYTES) return undefined;
  const u = (off: number) => Number(buf.readBigUInt64LE(off));
  const i = (off: number) => Number(buf.readBigInt64LE(off));
  return {
    creatorPid: u(48),
    createdMs: u(152),
    sumBytes: i(64),
    peakBytes: i(128),
    peakEpoch: u(136),
    peakMs: u(144),
    processesEver: u(168),
    oomPid: u(192),
    oomReason: OOM_REASONS[u(200)] ?? null,
    oomMs: u(208),
    oomSumBytes: i(216),
    oomDumpDone: u(232) === 1,
    stopperPid: u(240),
  };
}

/** undefined when there is no usable container file (children off, an older shim, someone else's file). */
export function readContainerHeader(runDir: string): ContainerHeader | undefined {
  let fd: number;
  try {
    fd = openSync(join(runDir, CONTAINER_FILE), READ_FLAGS);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(HEADER_BYTES);
    let got = 0;
    while (got < HEADER_BYTES) {
      const n = readSync(fd, buf, got, HEADER_BYTES - got, got);
      if (n === 0) break;
      got += n;
    }
    return parseContainerHeader(buf.subarray(0, got));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
