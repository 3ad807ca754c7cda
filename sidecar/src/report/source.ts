/**
 * Source lines for reports made from the state file, which (unlike a raw
 * dump) carries no source text: read the files from disk, once each.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

/** Text of `line` (1-based) of `file`, or undefined when unknown. */
export type SourceReader = (file: string, line: number) => string | undefined;

// Same bounds as the shim's dumps: a line is cut at 512 bytes; files larger
// than this are not source a human wrote and are not worth holding in memory.
const MAX_LINE = 512;
const MAX_FILE = 16 * 1024 * 1024;

/** A file's bytes and where each of its lines starts (line i + 1 starts at starts[i]). */
interface SourceFile {
  bytes: Buffer;
  starts: Uint32Array;
}

function lineStarts(bytes: Buffer): Uint32Array {
  let n = 1;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) n++;
  const starts = new Uint32Array(n);
  let k = 1;
  for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) starts[k++] = i + 1;
  return starts;
}

/**
 * Reads from disk with a per-file cache (a 100-frame report from one module
 * reads it once). Relative paths resolve against `cwd`, the profiled
 * process's working directory, not ours. Any read failure means "no source".
 *
 * The cache holds each file's bytes, and a line is decoded on its own when
 * asked: a fresh string of that line only. (Splitting the decoded file
 * gave lines that V8 keeps as slices of the whole file's text, so every
 * frame kept in a report held its whole source file alive: ~40 MB of
 * stdlib sources for a post-mortem of 16 small workers.) Lines are the same
 * as `text.split(/\r?\n/)` of the decoded file: a newline byte is never part
 * of a multi-byte UTF-8 sequence.
 */
export function diskSourceReader(cwd: string): SourceReader {
  const cache = new Map<string, SourceFile | null>();
  return (file, line) => {
    // Pseudo-files such as "<string>" or "<frozen importlib._bootstrap>" have no text on disk.
    if (file === '' || file.startsWith('<')) return undefined;
    const path = isAbsolute(file) || cwd === '' ? file : resolve(cwd, file);
    let src = cache.get(path);
    if (src === undefined) {
      src = null;
      let fd: number | undefined;
      try {
        // O_NONBLOCK and fstat on the descriptor: a FIFO or device named by a
        // hostile state file (or swapped in after a check) never blocks us.
        fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
        const st = fstatSync(fd);
        if (st.isFile() && st.size <= MAX_FILE) {
          const bytes = readFileSync(fd);
          src = { bytes, starts: lineStarts(bytes) };
        }
      } catch {
        // unreadable: cached as null so it is not retried per frame
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
      cache.set(path, src);
    }
    if (!src || !Number.isInteger(line) || line < 1 || line > src.starts.length) return undefined;
    const start = src.starts[line - 1]!;
    let end = line < src.starts.length ? src.starts[line]! - 1 : src.bytes.length;
    if (line < src.starts.length && end > start && src.bytes[end - 1] === 0x0d) end--; // \r\n
    return cutLine(src.bytes.toString('utf8', start, end));
  };
}

/**
 * The first MAX_LINE bytes of a line, as the shim's dump carries them: a
 * character the cut splits leaves one U+FFFD per byte kept of it (what the
 * shim's JSON writer makes of an incomplete sequence), so a post-mortem
 * report shows the same text as a dump of the same line.
 */
function cutLine(text: string): string {
  if (text.length <= MAX_LINE / 3) return text; // at most 3 UTF-8 bytes per UTF-16 unit
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= MAX_LINE) return text;
  let start = MAX_LINE; // where the character the cut falls in begins
  while (start > MAX_LINE - 3 && (bytes[start]! & 0xc0) === 0x80) start--;
  const kept = MAX_LINE - start;
  return bytes.toString('utf8', 0, start) + '\uFFFD'.repeat(kept);
}

/**
 * The indentation of a source line, for display under a flamegraph frame
 * (Fil shows it too): `{ indent: columns }` with tabs counted as 4 columns,
 * or `{}` when the line is not indented (so frames stay small).
 */
export function indentOf(text: string): { indent?: number } {
  let cols = 0;
  for (const c of text) {
    if (c === ' ') cols++;
    else if (c === '\t') cols += 4;
    else break;
  }
  return cols > 0 && text.trim() !== '' ? { indent: Math.min(cols, 64) } : {};
}
