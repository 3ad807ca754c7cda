import { describe, expect, test } from 'vitest';
import { renderFlamegraph, svgHeight } from '../../sidecar/src/report/flamegraph.js';
import type { Stack } from '../../sidecar/src/report/model.js';

const MiB = 1024 * 1024;
const f = (fn: string, line: number, code = '') => ({ file: '/work/example.py', line, function: fn, code });
const EXAMPLE: Stack[] = [
  { bytes: 400 * MiB, frames: [f('<module>', 15, 'main()'), f('main', 13), f('make_big_array', 4, 'return np.zeros((1024, 1024, 50))')] },
  { bytes: 80 * MiB, frames: [f('<module>', 15, 'main()'), f('main', 12), f('make_two_arrays', 7)] },
  { bytes: 80 * MiB, frames: [f('<module>', 15, 'main()'), f('main', 12), f('make_two_arrays', 8)] },
];

const rects = (svg: string) => [...svg.matchAll(/<g class="f" data-x="(\d+)" data-w="(\d+)" data-d="(\d+)"/g)];

describe('renderFlamegraph', () => {
  const svg = renderFlamegraph(EXAMPLE, { title: 'Peak <560 MiB>', totalBytes: 560 * MiB });

  test('one frame group per tree node, widths proportional to bytes', () => {
    // all, <module>, main:13, make_big_array, main:12, make_two_arrays:7, :8
    expect(rects(svg)).toHaveLength(7);
    expect(svg).toMatch(/data-w="419430400" data-d="3"[^>]*><title>[^<]*<\/title><rect x="10.00" y="\d+" width="842.86"/);
    expect(svgHeight(svg)).toBe(56 + 4 * 34 + 48);
  });

  test('labels, source text under the frame, titles and escaping', () => {
    expect(svg).toContain('>make_big_array (example.py:4)</text>');
    expect(svg).toContain('<text class="c" x="13.00" y="186">return np.zeros((1024, 1024, 50))</text>');
    // The tooltip ends with the whole source line.
    expect(svg).toContain('<title>make_big_array (example.py:4) — /work/example.py:4 — 400.0 MiB (71.43%)\nreturn np.zeros((1024, 1024, 50))</title>');
    expect(svg).toContain('>Peak &lt;560 MiB&gt;</text>');
    expect(svg).toContain('&lt;module&gt; (example.py:15)');
  });

  test('wider is redder', () => {
    const fill = (w: number) => new RegExp(`data-w="${w}"[^]*?fill="hsl\\(([\\d.]+),`).exec(svg)![1];
    expect(Number(fill(560 * MiB))).toBe(0);
    expect(Number(fill(400 * MiB))).toBeCloseTo(50 * (1 - 400 / 560), 1);
    expect(Number(fill(80 * MiB))).toBeGreaterThan(Number(fill(400 * MiB)));
  });

  test('self-contained: no external references, script in CDATA, parseable text', () => {
    expect(svg).not.toMatch(/(href|src)="http/);
    expect(svg).toContain('<![CDATA[var F=[');
    expect(svg.match(/]]>/g)).toHaveLength(1);
  });

  test('hostile text cannot break out of XML or CDATA', () => {
    const evil: Stack[] = [{ bytes: 100, frames: [{ file: '/x/<a&b>.py', line: 1, function: 'f"</text>', code: 'x = "]]></script>\u0001\uffff"' }] }];
    const out = renderFlamegraph(evil, { title: 't', totalBytes: 100 });
    expect(out.match(/]]>/g)).toHaveLength(1);
    expect(out).not.toMatch(/[\u0001\uffff]/);
    expect(out).toContain('f&quot;&lt;/text&gt; (&lt;a&amp;b&gt;.py:1)');
    expect(out).toContain(']]\\u003e');
  });

  test('reversed merges by the innermost frame', () => {
    const shared = [
      { bytes: 30, frames: [f('a', 1), f('alloc', 9)] },
      { bytes: 20, frames: [f('b', 2), f('alloc', 9)] },
    ];
    const rev = renderFlamegraph(shared, { title: 'r', totalBytes: 50, reversed: true });
    expect(rev).toMatch(/data-w="50" data-d="1"[^]*?>alloc \(example\.py:9\)</);
    expect(rects(rev)).toHaveLength(4);
  });

  test('nodes narrower than 0.1 px are folded into their parent', () => {
    const stacks: Stack[] = [{ bytes: 1_000_000, frames: [f('big', 1)] }];
    for (let i = 0; i < 50; i++) stacks.push({ bytes: 10, frames: [f('tiny', 100 + i)] });
    const out = renderFlamegraph(stacks, { title: 't', totalBytes: 1_000_500 });
    expect(rects(out)).toHaveLength(2); // all + big
    expect(out).toContain('data-w="1000500" data-d="0"'); // root still counts them
  });
});
