// Deep stacks in the flamegraphs (docs/report.md "Limits"): a stack deeper
// than DRAW_MAX frames is drawn with its outermost DRAW_OUTER and innermost
// DRAW_INNER frames and one box for the middle, the same box in every stack,
// so that hundreds of deep stacks do not each draw hundreds of boxes (470
// stacks 400 deep made a 20 MB index.html). The leaf lines keep their bytes.
import { describe, expect, test } from 'vitest';
import { flamegraph, MAX_BOXES, renderFlamegraph } from '../../sidecar/src/report/flamegraph.js';
import type { Frame, Stack } from '../../sidecar/src/report/model.js';
import { boundStacks, DRAW_INNER, DRAW_MAX, DRAW_OUTER, drawnChain, emptyTruncation, foldForDrawing, MAX_DEPTH } from '../../sidecar/src/report/stacks.js';
import { locate, topLines } from '../../sidecar/src/report/toplines.js';

const fr = (fn: string, line: number): Frame => ({ file: '/app/deep.py', line, function: fn, code: `code ${line}` });
const MODULE = fr('<module>', 30);
const MAIN = fr('main', 26);
const CALL = fr('descend', 15); // the recursive call
const ALLOC = fr('descend', 13); // the allocation at every level

/** deep_stack.py's shape: an allocation at every depth, `depth` frames of recursion. */
function recursion(depth: number, bytes: number): Stack {
  return { bytes, frames: [MODULE, MAIN, ...Array.from({ length: depth - 1 }, () => CALL), ALLOC] };
}

const boxes = (svg: string) => [...svg.matchAll(/<g class="f" data-x="(\d+)" data-w="(\d+)" data-d="(\d+)" data-f="(-?\d+)">\s*<title>([^<]*)<\/title>/g)];

describe('flamegraphs of deep stacks', () => {
  // 470 stacks 2 to 471 frames deep, bounded as render.ts bounds them (MAX_DEPTH).
  const raw = Array.from({ length: 470 }, (_, i) => recursion(i + 1, 600 + i));
  const stacks = boundStacks(raw, emptyTruncation());
  const total = stacks.reduce((a, s) => a + s.bytes, 0);
  const deepBytes = stacks.filter((s) => s.frames.length > DRAW_MAX).reduce((a, s) => a + s.bytes, 0);

  test('draw at most DRAW_MAX + 1 levels and a bounded number of boxes', () => {
    for (const reversed of [false, true]) {
      const svg = renderFlamegraph(stacks, { title: 't', totalBytes: total, reversed });
      const b = boxes(svg);
      const maxDepth = Math.max(...b.map((m) => Number(m[3])));
      expect(maxDepth).toBeLessThanOrEqual(DRAW_MAX);
      // Drawn whole, the reversed graph had a box per frame of every deep stack.
      expect(b.length).toBeLessThan(3 * 470);
      expect(svg.length).toBeLessThan(1_000_000);
    }
  });

  test('one middle box holds every deep stack, and says how many frames it hides', () => {
    const svg = renderFlamegraph(stacks, { title: 't', totalBytes: total });
    const middles = boxes(svg).filter((m) => m[5]!.startsWith('\u2026 frames folded \u2026'));
    expect(middles).toHaveLength(1);
    expect(Number(middles[0]![2])).toBe(deepBytes);
    expect(Number(middles[0]![3])).toBe(DRAW_OUTER + 1);
    // Stacks cut to MAX_DEPTH have MAX_DEPTH - DRAW_OUTER - DRAW_INNER frames in the middle, shallower ones fewer.
    const fewest = DRAW_MAX + 1 - DRAW_OUTER - DRAW_INNER;
    expect(middles[0]![5]).toContain(`${fewest}\u2013${MAX_DEPTH - DRAW_OUTER - DRAW_INNER} frames of stacks deeper than ${DRAW_MAX} not drawn`);
  });

  test('the leaf side keeps the allocating line with its exact bytes', () => {
    const { svg, root } = flamegraph(stacks, { title: 't', totalBytes: total, reversed: true });
    // Reversed: the allocating line is the first level, all of the memory.
    expect(root.children).toHaveLength(1);
    expect(root.children[0]!.frame).toEqual(ALLOC);
    expect(root.children[0]!.bytes).toBe(total);
    // Down the leaf side of a deep stack: DRAW_INNER drawn frames, then the middle box.
    let n = root.children[0]!;
    for (let d = 1; d < DRAW_INNER; d++) {
      n = n.children.find((c) => c.frame === CALL)!;
      expect(n, `level ${d}`).toBeDefined();
    }
    const middle = n.children.find((c) => c.frame?.function === '\u2026 frames folded \u2026');
    expect(middle?.bytes).toBe(deepBytes);
    expect(svg).toContain('descend (deep.py:13)');
  });

  test('stacks within DRAW_MAX are drawn whole, and the input is untouched', () => {
    const shallow = raw.slice(0, DRAW_MAX - 2); // up to DRAW_MAX frames
    expect(foldForDrawing(shallow)).toBe(shallow);
    const svg = renderFlamegraph(shallow, { title: 't', totalBytes: 1 });
    expect(svg).not.toContain('frames folded');
    expect(Math.max(...boxes(svg).map((m) => Number(m[3])))).toBe(DRAW_MAX);
    foldForDrawing(stacks);
    expect(stacks.every((s) => !s.frames.some((f) => f.function.includes('\u2026')))).toBe(true);
  });

  test('a top line is located in the drawn tree: at its frame on the leaf side, at the middle box when folded', () => {
    const { root } = flamegraph(stacks, { title: 't', totalBytes: total });
    const [top] = topLines(stacks, 1);
    // The largest stack is the deepest: its own frame (the allocation) is on the leaf side.
    const at = locate(root, drawnChain(top!.chain, top!.below));
    expect(at).toEqual({ x: 0, d: DRAW_MAX });
    // A frame in the middle of a deep stack: located at the middle box.
    const deep = stacks[stacks.length - 1]!.frames;
    const mid = locate(root, drawnChain(deep.slice(0, 100), deep.slice(100)));
    expect(mid?.d).toBe(DRAW_OUTER + 1);
  });
});

describe('flamegraphs of many deep, distinct stacks', () => {
  // 3 000 stacks 70 frames deep (within DRAW_MAX), distinct from the second
  // frame on: ~200 000 tree nodes at the files' 0.1-px cut.
  let seed = 11;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const stacks: Stack[] = Array.from({ length: 3000 }, (_, i) => ({
    bytes: i === 0 ? 50_000_000 : 4096 + Math.floor(rand() * 4096),
    frames: [MODULE, ...Array.from({ length: 69 }, (_, d) => fr(`f${d}`, 1 + Math.floor(rand() * 10_000)))],
  }));
  const total = stacks.reduce((a, s) => a + s.bytes, 0);

  test('draw at most MAX_BOXES frames, the widest first', () => {
    const { svg, minBytes } = flamegraph(stacks, { title: 't', totalBytes: total });
    const b = boxes(svg);
    expect(b.length).toBeLessThanOrEqual(MAX_BOXES + 1); // + the root
    expect(b.length).toBeGreaterThan(MAX_BOXES / 2);
    // Every box drawn is at least the cut, and the cut left out only narrower ones.
    expect(Math.min(...b.map((m) => Number(m[2])))).toBeGreaterThanOrEqual(minBytes);
    // The largest stack is drawn down to its allocating line.
    const leaf = stacks[0]!.frames[69]!;
    expect(svg).toContain(`${leaf.function} (deep.py:${leaf.line})`);
    expect(b.some((m) => Number(m[3]) === 70 && Number(m[2]) === 50_000_000)).toBe(true);
  });

  test('a smaller budget draws fewer', () => {
    const { svg } = flamegraph(stacks, { title: 't', totalBytes: total, maxBoxes: 1000 });
    expect(boxes(svg).length).toBeLessThanOrEqual(1001);
  });
});
