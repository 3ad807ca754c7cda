/**
 * Pure helpers over stacks: merging, ordering, the 99 % cut of report.json,
 * the folded text format and the call tree the flamegraphs are drawn from.
 */
import { basename } from './format.js';
import type { Frame, Stack } from './model.js';

/** Stands in for "no Python frame was known" so that such memory stays visible. */
export const NO_PYTHON_FRAME: Frame = { file: '', line: 0, function: '[no Python frame]', code: '' };

// `code` is derived from (file, line), so it takes no part in identity.
function frameKey(f: Frame): string {
  return `${f.file}\0${f.line}\0${f.function}`;
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
  const byKey = new Map<string, Stack>();
  for (const s of stacks) {
    const key = s.frames.map(frameKey).join('\x01');
    const seen = byKey.get(key);
    if (seen) seen.bytes += s.bytes;
    else byKey.set(key, { bytes: s.bytes, frames: s.frames });
  }
  return [...byKey.values()];
}

/** Largest first; equal sizes ordered by their folded text so output is deterministic. */
export function sortStacks(stacks: readonly Stack[]): Stack[] {
  const keyed = stacks.map((s) => ({ s, k: foldedStack(s) }));
  keyed.sort((a, b) => b.s.bytes - a.s.bytes || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0));
  return keyed.map((x) => x.s);
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

function foldedStack(s: Stack): string {
  return s.frames.length === 0 ? foldedLabel(NO_PYTHON_FRAME) : s.frames.map(foldedLabel).join(';');
}

/** One `frame;frame;... bytes` line per stack, root first, in the given order. */
export function toFolded(stacks: readonly Stack[]): string {
  const out: string[] = [];
  for (const s of stacks) out.push(`${foldedStack(s)} ${s.bytes}\n`);
  return out.join('');
}

export interface FlameNode {
  /** null for the root. */
  frame: Frame | null;
  /** Total bytes of this node and everything under it. */
  bytes: number;
  /** Largest first. */
  children: FlameNode[];
}

interface Building {
  frame: Frame | null;
  bytes: number;
  kids: Map<number, Building>;
}

/**
 * Call tree for a flamegraph. Normal: root → callers → callees. Reversed:
 * each stack is walked from its innermost frame, so all memory allocated at
 * the same line merges into one node whatever the path that led there.
 */
export function buildTree(stacks: readonly Stack[], reversed = false): FlameNode {
  // Frames are interned to small integers: map lookups by number are several
  // times cheaper than by string, which matters at 100 000 stacks.
  const ids = new Map<string, number>();
  const intern = (f: Frame): number => {
    const k = frameKey(f);
    let id = ids.get(k);
    if (id === undefined) ids.set(k, (id = ids.size));
    return id;
  };
  const root: Building = { frame: null, bytes: 0, kids: new Map() };
  for (const s of stacks) {
    if (s.bytes <= 0) continue;
    const frames = s.frames.length === 0 ? [NO_PYTHON_FRAME] : s.frames;
    root.bytes += s.bytes;
    let node = root;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[reversed ? frames.length - 1 - i : i]!;
      const id = intern(f);
      let next = node.kids.get(id);
      if (!next) node.kids.set(id, (next = { frame: f, bytes: 0, kids: new Map() }));
      next.bytes += s.bytes;
      node = next;
    }
  }
  return freeze(root);
}

// Iterative, not recursive: a hostile or very deep stack must not overflow the JS stack.
function freeze(root: Building): FlameNode {
  const top: FlameNode = { frame: null, bytes: root.bytes, children: [] };
  const todo: Array<[Building, FlameNode]> = [[root, top]];
  while (todo.length > 0) {
    const [b, n] = todo.pop()!;
    for (const k of b.kids.values()) {
      const c: FlameNode = { frame: k.frame, bytes: k.bytes, children: [] };
      n.children.push(c);
      todo.push([k, c]);
    }
    n.children.sort((x, y) => y.bytes - x.bytes || (foldedLabel(x.frame!) < foldedLabel(y.frame!) ? -1 : 1));
  }
  return top;
}
