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

/**
 * Reads from disk with a per-file cache (a 100-frame report from one module
 * reads it once). Relative paths resolve against `cwd`, the profiled
 * process's working directory, not ours. Any read failure means "no source".
 */
export function diskSourceReader(cwd: string): SourceReader {
  const cache = new Map<string, string[] | null>();
  return (file, line) => {
    // Pseudo-files such as "<string>" or "<frozen importlib._bootstrap>" have no text on disk.
    if (file === '' || file.startsWith('<')) return undefined;
    const path = isAbsolute(file) || cwd === '' ? file : resolve(cwd, file);
    let lines = cache.get(path);
    if (lines === undefined) {
      lines = null;
      let fd: number | undefined;
      try {
        // O_NONBLOCK and fstat on the descriptor: a FIFO or device named by a
        // hostile state file (or swapped in after a check) never blocks us.
        fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
        const st = fstatSync(fd);
        if (st.isFile() && st.size <= MAX_FILE) lines = readFileSync(fd, 'utf8').split(/\r?\n/);
      } catch {
        // unreadable: cached as null so it is not retried per frame
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
      cache.set(path, lines);
    }
    const text = lines?.[line - 1];
    return text === undefined ? undefined : cutLine(text);
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
