/**
 * Writes a file given as pieces of text (report.json's lines, the folded
 * stacks), a chunk of ~64 KiB at a time. The watcher renders inside the
 * memory limit it reports on: the whole text of report.json (MBs for many
 * processes) as one string, then as one Buffer to write it, were two large
 * objects V8 keeps until a full collection (docs/report.md "Memory of the
 * renderer"). The bytes are the same as writing the pieces joined.
 */
import type { FileHandle } from 'node:fs/promises';

/** Text of a file: whole, or in pieces (each piece whole characters: no split surrogate pair). */
export type FileContent = string | Buffer | Iterable<string>;

/** Characters gathered before one write: small enough for the young generation, large enough to be few syscalls. */
const CHUNK_CHARS = 64 * 1024;

/** Writes `content` at the handle's position (a new file: from its start). */
export async function writeContent(fh: FileHandle, content: FileContent): Promise<void> {
  if (typeof content === 'string' || Buffer.isBuffer(content)) {
    await fh.writeFile(content);
    return;
  }
  let chunk = '';
  for (const piece of content) {
    chunk += piece;
    if (chunk.length >= CHUNK_CHARS) {
      await fh.writeFile(chunk);
      chunk = '';
    }
  }
  if (chunk.length > 0) await fh.writeFile(chunk);
}
