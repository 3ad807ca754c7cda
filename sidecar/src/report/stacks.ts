/**
 * Pure helpers over stacks: merging, ordering, the 99 % cut of report.json,
 * the folded text format and the call tree the flamegraphs are drawn from.
 */
import { basename } from './format.js';
import type { Frame, OutOfSpaceTable, Stack, Truncation } from './model.js';

/** Stands in for "no Python frame was known" so that such memory stays visible. */
export const NO_PYTHON_FRAME: Frame = { file: '', line: 0, function: '[no Python frame]', code: '' };

// `code` is derived from (file, line), so it takes no part in identity.
function frameKey(f: Frame): string {
  return `${f.file}\0${f.line}\0${f.function}`;
}

/**
 * Maps frames to small integers, by object first (parsers share one Frame
 * object per distinct frame) and by value otherwise. Building string keys
 * per frame per stack dominated the cost at 100 000 stacks; this avoids it.
 * Per call, not global: a long-running watcher must not accumulate frames.
 */
class FrameIds {
  private readonly byObject = new Map<Frame, number>();
  private readonly byKey = new Map<string, number>();
  readonly frames: Frame[] = [];
  id(f: Frame): number {
    let id = this.byObject.get(f);
    if (id !== undefined) return id;
    const key = frameKey(f);
    id = this.byKey.get(key);
    if (id === undefined) {
      this.byKey.set(key, (id = this.frames.length));
      this.frames.push(f);
    }
    this.byObject.set(f, id);
    return id;
  }
}

/**
 * Folded frame label: `basename:line (function)`, e.g. `example.py:4 (make_big_array)`.
 * `;` separates frames and the last space separates the count, so `;` and
 * line breaks inside names are replaced; spaces are fine (tools split on the last one).
 */
export function foldedLabel(f: Frame): string {
  const label = f.file === '' && f.line === 0 ? f.function : `${basename(f.file)}:${f.line} (${f.function})`;
  return label.replace(/;/g, ',').replace(/[\r\n]+/g, ' ');
}

/** Sums stacks whose frames are identical; keeps first-seen order. */
export function mergeStacks(stacks: readonly Stack[]): Stack[] {
  const ids = new FrameIds();
  const byKey = new Map<string, Stack>();
  for (const s of stacks) {
    let key = '';
    for (const f of s.frames) key += `${ids.id(f)},`;
    const seen = byKey.get(key);
    if (seen) seen.bytes += s.bytes;
    else byKey.set(key, { bytes: s.bytes, frames: s.frames });
  }
  return [...byKey.values()];
}

/** Largest first; a stable sort, so equal sizes keep their input order (deterministic). */
export function sortStacks(stacks: readonly Stack[]): Stack[] {
  return [...stacks].sort((a, b) => b.bytes - a.bytes);
}

/**
 * Keeps the largest stacks (input sorted largest first) until they cover at
 * least `fraction` of `peakBytes`. When all of them together cover less (the
 * peak included an allocation in flight), all are kept.
 */
export function trimToCoverage(stacks: readonly Stack[], peakBytes: number, fraction = 0.99): Stack[] {
  const goal = peakBytes * fraction;
  let covered = 0;
  const kept: Stack[] = [];
  for (const s of stacks) {
    if (covered >= goal && kept.length > 0) break;
    kept.push(s);
    covered += s.bytes;
  }
  return kept;
}

/** One `frame;frame;... bytes` line per stack, root first, in the given order. */
export function toFolded(stacks: readonly Stack[]): string {
  return [...foldedLines(stacks)].join('');
}

/**
 * The lines of toFolded one at a time, for writing them as they come
 * (chunks.ts): the whole text of a large profile (MBs) is never one string.
 */
export function* foldedLines(stacks: readonly Stack[]): Generator<string> {
  const labels = new Map<Frame, string>(); // one label per distinct frame object
  const label = (f: Frame): string => {
    let l = labels.get(f);
    if (l === undefined) labels.set(f, (l = foldedLabel(f)));
    return l;
  };
  for (const s of stacks) {
    const frames = s.frames.length === 0 ? [NO_PYTHON_FRAME] : s.frames;
    let line = label(frames[0]!);
    for (let i = 1; i < frames.length; i++) line += `;${label(frames[i]!)}`;
    yield `${line} ${s.bytes}\n`;
  }
}

export interface FlameNode {
  /** null for the root. */
  frame: Frame | null;
  /** Total bytes of this node and everything under it. */
  bytes: number;
  /** Largest first. */
  children: FlameNode[];
}

/**
 * Call tree for a flamegraph. Normal: root → callers → callees. Reversed:
 * each stack is walked from its innermost frame, so all memory allocated at
 * the same line merges into one node whatever the path that led there.
 * Siblings are ordered largest first, equal sizes by folded label.
 *
 * Nodes smaller than `minBytes` are left out (their bytes stay in the
 * parent). The tree is built top-down by partitioning the stacks level by
 * level, so the part of a stack below a dropped node is never even looked at:
 * with 100 000 distinct stacks almost every deep node is dropped, and building
 * it first (a Map per node, ~1 M nodes) cost seconds.
 */
export function buildTree(stacks: readonly Stack[], reversed = false, minBytes = 0): FlameNode {
  const ids = new FrameIds();
  const labels: string[] = []; // computed once per frame, not per comparison
  const label = (id: number) => (labels[id] ??= foldedLabel(ids.frames[id]!));
  const live = stacks.filter((s) => s.bytes > 0);
  const framesOf = (s: Stack) => (s.frames.length === 0 ? [NO_PYTHON_FRAME] : s.frames);
  const root: FlameNode = { frame: null, bytes: live.reduce((a, s) => a + s.bytes, 0), children: [] };

  // Iterative, not recursive: a hostile or very deep stack must not overflow the JS stack.
  const todo: Array<{ node: FlameNode; members: Stack[]; depth: number }> = [{ node: root, members: live, depth: 0 }];
  while (todo.length > 0) {
    const { node, members, depth } = todo.pop()!;
    const groups = new Map<number, { bytes: number; members: Stack[] }>();
    for (const s of members) {
      const frames = framesOf(s);
      if (depth >= frames.length) continue; // ends here: self bytes of `node`
      const id = ids.id(frames[reversed ? frames.length - 1 - depth : depth]!);
      const g = groups.get(id);
      if (g) {
        g.bytes += s.bytes;
        g.members.push(s);
      } else groups.set(id, { bytes: s.bytes, members: [s] });
    }
    const kids = [...groups].filter(([, g]) => g.bytes >= minBytes);
    kids.sort(([xi, x], [yi, y]) => y.bytes - x.bytes || (label(xi) < label(yi) ? -1 : 1));
    for (const [id, g] of kids) {
      const child: FlameNode = { frame: ids.frames[id]!, bytes: g.bytes, children: [] };
      node.children.push(child);
      todo.push({ node: child, members: g.members, depth: depth + 1 });
    }
  }
  return root;
}

/**
 * Rendering limits (docs/report.md "Limits"): whatever the input, a report
 * holds at most MAX_STACKS stacks of at most MAX_DEPTH frames, so memory and
 * output size stay bounded. A deeper stack keeps its outermost KEEP_OUTER
 * frames (where the program's own code is) and its innermost KEEP_INNER frames
 * (the line that allocated), with one marker frame for the frames folded in
 * between. Past MAX_STACKS, the smallest stacks are merged into one "other"
 * stack. report.json says what was cut (`truncation`).
 */
export const MAX_DEPTH = 200;
export const KEEP_INNER = 49;
export const KEEP_OUTER = MAX_DEPTH - KEEP_INNER - 1;
export const MAX_STACKS = 100_000;

export function emptyTruncation(): Truncation {
  return { foldedStacks: 0, foldedFrames: 0, otherStacks: 0, otherBytes: 0, maxDepth: MAX_DEPTH, maxStacks: MAX_STACKS };
}

export function isTruncated(t: Truncation): boolean {
  return t.foldedStacks > 0 || t.otherStacks > 0 || (t.outOfSpace?.length ?? 0) > 0;
}

/** The state header's `spaceShort` bits as table names; empty for 0. */
export function outOfSpaceTables(bits: number): OutOfSpaceTable[] {
  const names: OutOfSpaceTable[] = ['stacks', 'functions', 'names'];
  return names.filter((_, i) => (bits & (1 << i)) !== 0);
}

/** The marker frame that stands for `n` folded frames. */
export function foldedFramesMarker(n: number): Frame {
  return { file: '', line: 0, function: `[${n} frames folded]`, code: '' };
}

/** The frame of the stack that holds the merged small stacks. */
export function otherStacksFrame(n: number): Frame {
  return { file: '', line: 0, function: `[${n} smaller stacks merged]`, code: '' };
}

/** A stack's frames cut to MAX_DEPTH (outermost and innermost kept); counts the cut in `t`. */
export function foldDeep<T>(frames: readonly T[], marker: (folded: number) => T, t: Truncation): T[] {
  if (frames.length <= MAX_DEPTH) return frames as T[];
  const folded = frames.length - KEEP_OUTER - KEEP_INNER;
  t.foldedStacks++;
  t.foldedFrames += folded;
  return [...frames.slice(0, KEEP_OUTER), marker(folded), ...frames.slice(frames.length - KEEP_INNER)];
}

/**
 * Drawing limit (docs/report.md "Limits"): a flamegraph draws at most
 * DRAW_MAX frames of a stack. A deeper one keeps its outermost DRAW_OUTER
 * frames and its innermost DRAW_INNER (the lines that allocated: the answer),
 * with one box for the middle. The box is the same frame in every stack of a
 * graph, so deep stacks merge through it instead of each drawing its own
 * hundreds of frames (470 stacks 400 deep drew 94 000 boxes, a 20 MB page).
 * DRAW_INNER < KEEP_INNER: the marker of a stack cut to MAX_DEPTH falls in
 * the drawn middle, not in the leaf side. report.json and
 * peak-memory.folded are not affected.
 */
export const DRAW_OUTER = 30;
export const DRAW_INNER = 48;
export const DRAW_MAX = DRAW_OUTER + 1 + DRAW_INNER;
export const DRAWN_MIDDLE_FUNCTION = '\u2026 frames folded \u2026';

/** The middle box's frame: its label is fixed (trees and diffs key on it), its text says how many. */
export function drawnMiddleFrame(minFolded: number, maxFolded: number): Frame {
  const n = minFolded === maxFolded ? `${minFolded}` : `${minFolded}\u2013${maxFolded}`;
  return {
    file: '',
    line: 0,
    function: DRAWN_MIDDLE_FUNCTION,
    code: `${n} frames of stacks deeper than ${DRAW_MAX} not drawn (report.json and peak-memory.folded keep them)`,
  };
}

/** Stacks as a flamegraph draws them (DRAW_MAX); the input itself when none is deeper. */
export function foldForDrawing(stacks: readonly Stack[]): readonly Stack[] {
  let min = Infinity;
  let max = 0;
  for (const s of stacks) {
    if (s.frames.length <= DRAW_MAX) continue;
    const n = s.frames.length - DRAW_OUTER - DRAW_INNER;
    if (n < min) min = n;
    if (n > max) max = n;
  }
  if (max === 0) return stacks;
  const middle = drawnMiddleFrame(min, max);
  return stacks.map((s) =>
    s.frames.length <= DRAW_MAX ? s : { bytes: s.bytes, frames: [...s.frames.slice(0, DRAW_OUTER), middle, ...s.frames.slice(s.frames.length - DRAW_INNER)] },
  );
}

/**
 * The drawn path to the last frame of `chain`, where `chain` + `below` is a
 * whole stack (toplines.ts): the same frames when the stack is drawn whole,
 * else cut as foldForDrawing cuts it (ending at the middle box when the
 * frame itself is not drawn).
 */
export function drawnChain(chain: readonly Frame[], below: readonly Frame[]): Frame[] {
  const n = chain.length + below.length;
  if (n <= DRAW_MAX || chain.length <= DRAW_OUTER) return [...chain];
  const middle = drawnMiddleFrame(0, 0); // only its identity (label) matters for locating
  const innerStart = n - DRAW_INNER;
  const outer = [...chain.slice(0, DRAW_OUTER), middle];
  return chain.length <= innerStart ? outer : [...outer, ...chain.slice(innerStart)];
}

/**
 * Which of `bytes.length` stacks to keep: all when they are at most
 * MAX_STACKS, else the MAX_STACKS - 1 largest (ties in input order), leaving
 * one place for the "other" stack. Sorting a typed copy is native and fast
 * even for millions of stacks.
 */
export function selectLargest(bytes: ArrayLike<number>, maxStacks = MAX_STACKS): Uint8Array | null {
  const n = bytes.length;
  if (n <= maxStacks) return null; // null: keep all
  const keepCount = maxStacks - 1;
  const sorted = Float64Array.from(bytes as ArrayLike<number>).sort();
  const threshold = sorted[n - keepCount]!;
  let above = 0;
  for (let i = 0; i < n; i++) if (bytes[i]! > threshold) above++;
  let equalSlots = keepCount - above;
  const keep = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (b > threshold || (b === threshold && equalSlots-- > 0)) keep[i] = 1;
  }
  return keep;
}

/**
 * Applies the limits to stacks already in memory (data from any source: the
 * parsers apply them earlier, while reading, so this is usually a no-op).
 */
export function boundStacks(stacks: readonly Stack[], t: Truncation): Stack[] {
  let out = stacks.map((s) => (s.frames.length > MAX_DEPTH ? { bytes: s.bytes, frames: foldDeep(s.frames, foldedFramesMarker, t) } : s));
  const keep = selectLargest(out.map((s) => s.bytes));
  if (keep) {
    let otherBytes = 0;
    let otherCount = 0;
    const kept: Stack[] = [];
    out.forEach((s, i) => {
      if (keep[i]) kept.push(s);
      else {
        otherBytes += s.bytes;
        otherCount++;
      }
    });
    t.otherStacks += otherCount;
    t.otherBytes += otherBytes;
    kept.push({ bytes: otherBytes, frames: [otherStacksFrame(t.otherStacks)] });
    out = kept;
  }
  return out;
}

/** Latest time a JS Date can hold; a larger "time" (hostile or garbage) reads as 0, unknown. */
const MAX_DATE_MS = 8.64e15;
export function validTimeMs(ms: number): number {
  return ms >= 0 && ms <= MAX_DATE_MS ? ms : 0;
}
