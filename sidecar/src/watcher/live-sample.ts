/**
 * One sample of a process's live memory per call stack: the state file's
 * `live` area (bytes per node, docs/protocol.md "State file"), read while the
 * shim keeps writing it. Node i keeps its meaning for the life of the file
 * (nodes are appended), so the sample can be turned into stacks later, with
 * `readStateFile(path, { nodeBytes })`, as long as the file is there.
 *
 * The file is another party's: opened without following a link or blocking,
 * regular files only, the area checked against the file's size, at most
 * MAX_SAMPLE_NODES nodes. Each node's value is one the shim wrote at some
 * moment of the read (8-byte aligned stores); the sum is exact up to the
 * allocations made during the read.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { READ_FLAGS } from '../report/safe-file.js';

/** 4 M nodes = 32 MiB read per sample, far beyond real programs (10 k–100 k nodes). */
export const MAX_SAMPLE_NODES = 4 * 1024 * 1024;

const HEADER_BYTES = 4096;
const NODE_COUNT = 24;
const CURRENT_BYTES = 40;
const LIVE_OFFSET = 112;

export interface LiveSample {
  ino: number;
  /** The header's tracked bytes at the read. */
  currentBytes: number;
  /** Live bytes per node (0 where none); sums to about `currentBytes`. */
  bytes: Float64Array;
  /** Sum of `bytes`. */
  totalBytes: number;
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** undefined when the file is gone, not a regular file, or its live area does not fit the file. */
export function readLiveSample(path: string): LiveSample | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size < HEADER_BYTES) return undefined;
    const header = Buffer.alloc(HEADER_BYTES);
    if (readFully(fd, header, 0) < HEADER_BYTES || header.toString('latin1', 0, 8) !== 'HWSTATE1') return undefined;
    const nodeCount = Number(header.readBigUInt64LE(NODE_COUNT));
    const liveOff = Number(header.readBigUInt64LE(LIVE_OFFSET));
    if (nodeCount > MAX_SAMPLE_NODES || liveOff < HEADER_BYTES || liveOff + nodeCount * 8 > st.size) return undefined;
    const area = Buffer.alloc(nodeCount * 8);
    if (readFully(fd, area, liveOff) < area.length) return undefined;
    const bytes = new Float64Array(nodeCount);
    let totalBytes = 0;
    for (let i = 0; i < nodeCount; i++) {
      const v = Number(area.readBigInt64LE(i * 8));
      if (v > 0) {
        bytes[i] = v;
        totalBytes += v;
      }
    }
    return { ino: st.ino, currentBytes: Number(header.readBigInt64LE(CURRENT_BYTES)), bytes, totalBytes };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
