/**
 * One read of a state file's header and, when asked, one of its per-node
 * areas (docs/protocol.md "State file"): `live` (bytes per node now),
 * `cpeak` (bytes per node at the container peak, "Multiple processes") or
 * `kill` (bytes per node when the process saw the kernel's OOM kill).
 * Node i keeps its meaning for the life of the file (nodes are appended), so
 * the bytes can be turned into stacks with `readStateFile(path, { nodeBytes })`
 * as long as the file is there.
 *
 * The file is another party's: opened without following a link or blocking,
 * regular files only, the area checked against the file's size, at most
 * MAX_SAMPLE_NODES nodes. Each node's value is one the shim wrote at some
 * moment of the read (8-byte aligned stores).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { READ_FLAGS } from '../report/safe-file.js';
import { HEADER, STATE_HEADER_SIZE, STATE_MAGIC } from '../state/layout.js';

/** 4 M nodes = 32 MiB read per sample, far beyond real programs (10 k–100 k nodes). */
export const MAX_SAMPLE_NODES = 4 * 1024 * 1024;

const HEADER_BYTES = STATE_HEADER_SIZE;
const AREA_OFFSET = { live: HEADER.liveOffset, cpeak: HEADER.cpeakOffset, kill: HEADER.killOffset } as const;

export interface StateRead {
  ino: number;
  /** The 4096-byte header as read. */
  header: Buffer;
  /** The header's tracked bytes at the read. */
  currentBytes: number;
  /** Bytes per node of the area asked for (0 where none); undefined when none was asked or it is absent. */
  bytes: Float64Array | undefined;
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

/** undefined when the file is gone, not a regular file, or not a state file. */
export function readStateArea(path: string, area: 'live' | 'cpeak' | 'kill' | 'none'): StateRead | undefined {
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
    if (readFully(fd, header, 0) < HEADER_BYTES || header.toString('latin1', 0, 8) !== STATE_MAGIC) return undefined;
    const out: StateRead = { ino: st.ino, header, currentBytes: Number(header.readBigInt64LE(HEADER.currentBytes)), bytes: undefined, totalBytes: 0 };
    if (area === 'none') return out;
    const nodeCount = Number(header.readBigUInt64LE(HEADER.nodeCount));
    const off = Number(header.readBigUInt64LE(AREA_OFFSET[area]));
    if (nodeCount > MAX_SAMPLE_NODES || off < HEADER_BYTES || off + nodeCount * 8 > st.size) return out;
    const raw = Buffer.alloc(nodeCount * 8);
    if (readFully(fd, raw, off) < raw.length) return out;
    const bytes = new Float64Array(nodeCount);
    for (let i = 0; i < nodeCount; i++) {
      const v = Number(raw.readBigInt64LE(i * 8));
      if (v > 0) {
        bytes[i] = v;
        out.totalBytes += v;
      }
    }
    out.bytes = bytes;
    return out;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
