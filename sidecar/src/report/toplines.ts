/**
 * The answer of a report (pure): the program's own lines that hold the most
 * memory, with the caller chain that led there, and where that frame is in
 * the flamegraph so the page can zoom to it.
 */
import { basename, humanBytes } from './format.js';
import { ownFrameIndex } from './frames.js';
import type { Frame, ReportJson, Stack } from './model.js';
import type { FlameNode } from './stacks.js';

export interface TopLine {
  /** The own-code frame (innermost frame of the program's own code). */
  frame: Frame;
  /** Container-wide reports: the process frame (`Frame.pid`) the line's memory is in; the same line in two processes is two rows. */
  process?: Frame;
  /** Bytes of every stack whose own-code frame is this line. */
  bytes: number;
  /** How many distinct stacks lead there. */
  paths: number;
  /** The largest of those stacks, root first, down to and including `frame`. */
  chain: Frame[];
  /** The frames below `frame` in that stack (library code the line called). */
  below: Frame[];
}

const keys = new WeakMap<Frame, string>();
function key(f: Frame): string {
  let k = keys.get(f);
  if (k === undefined) keys.set(f, (k = `${f.file}\0${f.line}\0${f.function}`));
  return k;
}

/** Lines largest first; `stacks` in any order. A stack with no frame is its own row (no Python frame). */
export function topLines(stacks: readonly Stack[], limit: number): TopLine[] {
  const byLine = new Map<string, TopLine>();
  // Largest first, so each line's chain is its largest stack's.
  const sorted = isSorted(stacks) ? stacks : [...stacks].sort((a, b) => b.bytes - a.bytes);
  for (const s of sorted) {
    if (s.bytes <= 0) continue;
    const i = ownFrameIndex(s.frames);
    const frame: Frame = i >= 0 ? s.frames[i]! : { file: '', line: 0, function: '[no Python frame]', code: '' };
    const process = s.frames[0]?.pid !== undefined && i > 0 ? s.frames[0] : undefined;
    const k = process ? `${process.pid}\0${key(frame)}` : key(frame);
    const row = byLine.get(k);
    if (row) {
      row.bytes += s.bytes;
      row.paths++;
    } else {
      const chain = s.frames.slice(0, i + 1);
      byLine.set(k, { frame, bytes: s.bytes, paths: 1, chain, below: s.frames.slice(i + 1), ...(process ? { process } : {}) });
    }
  }
  return [...byLine.values()].sort((a, b) => b.bytes - a.bytes).slice(0, limit);
}

function isSorted(stacks: readonly Stack[]): boolean {
  for (let i = 1; i < stacks.length; i++) if (stacks[i]!.bytes > stacks[i - 1]!.bytes) return false;
  return true;
}

/**
 * Where the end of `chain` is drawn in a (normal, callers-first) flamegraph
 * tree: its byte offset and depth, as the SVG's data-x/data-d. When the frame
 * was too narrow to draw (not in the tree, or under `minBytes`), its deepest
 * drawn ancestor; null when not even the first frame is there.
 */
export function locate(root: FlameNode, chain: readonly Frame[], minBytes = 0): { x: number; d: number } | null {
  let node = root;
  let x = 0;
  let found: { x: number; d: number } | null = null;
  for (let d = 0; d < chain.length; d++) {
    const want = key(chain[d]!);
    let cx = x;
    let next: FlameNode | undefined;
    for (const c of node.children) {
      if (c.frame && key(c.frame) === want) {
        next = c;
        break;
      }
      cx += c.bytes;
    }
    if (!next || next.bytes < minBytes) break; // not drawn at this cut
    node = next;
    x = cx;
    found = { x, d: d + 1 };
  }
  return found;
}

/** `file:line` of a frame as people write it. */
export function fileLine(f: Frame): string {
  return f.file === '' && f.line === 0 ? f.function : `${basename(f.file)}:${f.line}`;
}

/**
 * The top lines as text for a terminal or a log (`kubectl logs`): one line
 * each, `  400.0 MiB  example.py:4  make_big_array  return np.zeros(...)`.
 */
export function topLinesText(stacks: readonly Stack[], limit = 3): string[] {
  const rows = topLines(stacks, limit);
  const bytes = rows.map((r) => humanBytes(r.bytes));
  // Container-wide: `pid 41 (worker 3)` before the line; one width for all rows.
  const procs = rows.map((r) => (r.process ? processShort(r.process) : ''));
  const wp = Math.max(0, ...procs.map((p) => p.length));
  const where = rows.map((r) => fileLine(r.frame));
  const fns = rows.map((r) => (r.frame.file === '' && r.frame.line === 0 ? '' : r.frame.function));
  const wb = Math.max(0, ...bytes.map((b) => b.length));
  const ww = Math.max(0, ...where.map((w) => w.length));
  const wf = Math.max(0, ...fns.map((f) => f.length));
  return rows.map((r, i) => {
    const fn = fns[i] ? `  ${r.frame.code ? fns[i]!.padEnd(wf) : fns[i]}` : '';
    const code = r.frame.code ? `  ${r.frame.code.length > 100 ? `${r.frame.code.slice(0, 99)}\u2026` : r.frame.code}` : '';
    // Source text goes to a terminal: no control characters (escape sequences).
    const proc = wp > 0 ? `${procs[i]!.padEnd(wp)}  ` : '';
    return `  ${bytes[i]!.padStart(wb)}  ${proc}${where[i]!.padEnd(ww)}${fn}${code}`.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  });
}

/**
 * `pid 41 (worker 3)` from a process frame named `pid 41: worker 3
 * (multiprocessing spawn)`: how it started (process-label.ts) is left to the report.
 */
export function processShort(f: Frame): string {
  const m = /^pid (\d+): (.*?)(?: \((?:multiprocessing(?: spawn| forkserver)?|fork)\))?$/s.exec(f.function);
  return m ? `pid ${m[1]} (${m[2]})` : f.function;
}

/**
 * What `highwater run` and `highwater watch` print after the report path: a
 * heading and the top lines (of what was live when it ran out, for an OOM
 * report that has it; of the peak otherwise). Empty when nothing was tracked.
 */
export function reportSummaryLines(report: Pick<ReportJson, 'stacks' | 'oomStacks'>, limit = 3): string[] {
  const live = report.oomStacks && report.oomStacks.length > 0;
  const lines = topLinesText(live ? report.oomStacks! : report.stacks, limit);
  if (lines.length === 0) return [];
  return [`top lines ${live ? 'live when it ran out' : 'at the peak'}:`, ...lines];
}
