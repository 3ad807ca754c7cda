import { describe, expect, test } from 'vitest';
import type { Frame, Stack } from '../../sidecar/src/report/model.js';
import { buildTree, foldedLabel, mergeStacks, sortStacks, toFolded, trimToCoverage } from '../../sidecar/src/report/stacks.js';

const fr = (fn: string, line: number, file = '/w/a.py'): Frame => ({ file, line, function: fn, code: '' });
const M = fr('<module>', 1);
const st = (bytes: number, ...frames: Frame[]): Stack => ({ bytes, frames });

describe('stacks', () => {
  test('foldedLabel: basename:line (function), separators made safe', () => {
    expect(foldedLabel(fr('make_big_array', 4, '/work/example.py'))).toBe('example.py:4 (make_big_array)');
    expect(foldedLabel(fr('a;b\nc', 2, 'C:\\x\\y.py'))).toBe('y.py:2 (a,b c)');
  });

  test('merge sums identical stacks (code ignored) and keeps distinct ones', () => {
    const merged = mergeStacks([st(1, M, fr('f', 2)), st(2, M, fr('f', 3)), st(4, M, { ...fr('f', 2), code: 'x' })]);
    expect(merged.map((s) => s.bytes)).toEqual([5, 2]);
  });

  test('sort is largest first, ties keep input order', () => {
    const sorted = sortStacks([st(1, fr('b', 1)), st(9, fr('z', 1)), st(1, fr('a', 1))]);
    expect(sorted.map((s) => s.frames[0]!.function)).toEqual(['z', 'b', 'a']);
  });

  test('trimToCoverage keeps the fewest largest stacks reaching 99 %', () => {
    const stacks = [st(900), st(85), st(10), st(5)];
    expect(trimToCoverage(stacks, 1000).map((s) => s.bytes)).toEqual([900, 85, 10]); // 995 >= 990
    expect(trimToCoverage(stacks, 1000, 0.9).map((s) => s.bytes)).toEqual([900]);
    // Stacks summing to less than the peak: all kept.
    expect(trimToCoverage([st(10), st(5)], 1000)).toHaveLength(2);
  });

  test('toFolded: one line per stack, empty stack labelled', () => {
    expect(toFolded([st(7, M, fr('g', 5, '/w/b.py')), st(3)])).toBe('a.py:1 (<module>);b.py:5 (g) 7\n[no Python frame] 3\n');
  });

  test('buildTree normal and reversed', () => {
    const stacks = [st(10, M, fr('f', 2), fr('leaf', 9)), st(5, M, fr('g', 3), fr('leaf', 9)), st(1, M)];
    const t = buildTree(stacks);
    expect(t.bytes).toBe(16);
    expect(t.children).toHaveLength(1);
    const m = t.children[0]!;
    expect(m.bytes).toBe(16);
    expect(m.children.map((c) => [c.frame!.function, c.bytes])).toEqual([
      ['f', 10],
      ['g', 5],
    ]);

    const r = buildTree(stacks, true);
    expect(r.children.map((c) => [c.frame!.function, c.bytes])).toEqual([
      ['leaf', 15],
      ['<module>', 1],
    ]);
    expect(r.children[0]!.children.map((c) => c.frame!.function)).toEqual(['f', 'g']);
  });

  test('buildTree survives a 50 000-deep stack (no recursion)', () => {
    const deep = Array.from({ length: 50_000 }, (_, i) => fr('r', i + 1));
    let n = buildTree([st(1, ...deep)]);
    let depth = 0;
    while (n.children.length > 0) {
      n = n.children[0]!;
      depth++;
    }
    expect(depth).toBe(50_000);
  });
});
