/**
 * `highwater diff OLD NEW` (pure): the change of the peak, the own-code
 * lines that changed most, and a differential flamegraph page in the manner
 * of Brendan Gregg's differential flame graphs: the NEW profile's shape,
 * each frame coloured by how its bytes changed (red grew, blue shrank, the
 * deeper the colour the larger the change), and the OLD profile coloured the
 * same way so that what went away is visible too.
 */
import { flamegraph, pathKey } from './flamegraph.js';
import { escapeXml as esc, humanBytes } from './format.js';
import { foldImportMachinery } from './frames.js';
import { code, frame, LAZY_FRAMES_SCRIPT, where } from './html.js';
import type { Frame, ReportJson, Stack } from './model.js';
import { foldForDrawing, mergeStacks, sortStacks } from './stacks.js';
import { fileLine, topLines } from './toplines.js';

export interface LineChange {
  frame: Frame;
  oldBytes: number;
  newBytes: number;
}

export interface ReportDiff {
  oldPeak: number;
  newPeak: number;
  /** Largest |change| first. */
  lines: LineChange[];
}

/** Lines match across runs by file name, line and function (the paths may differ between machines). */
const lineKey = (f: Frame) => `${fileLine(f)}\0${f.function}`;

function ownLines(stacks: readonly Stack[]): Map<string, { frame: Frame; bytes: number }> {
  const rows = topLines(sortStacks(mergeStacks(foldImportMachinery(stacks))), Number.MAX_SAFE_INTEGER);
  const out = new Map<string, { frame: Frame; bytes: number }>();
  for (const r of rows) {
    const k = lineKey(r.frame);
    const seen = out.get(k);
    if (seen) seen.bytes += r.bytes;
    else out.set(k, { frame: r.frame, bytes: r.bytes });
  }
  return out;
}

export function diffReports(oldR: Pick<ReportJson, 'peakBytes' | 'stacks'>, newR: Pick<ReportJson, 'peakBytes' | 'stacks'>): ReportDiff {
  const a = ownLines(oldR.stacks);
  const b = ownLines(newR.stacks);
  const lines: LineChange[] = [];
  for (const [k, n] of b) lines.push({ frame: n.frame, oldBytes: a.get(k)?.bytes ?? 0, newBytes: n.bytes });
  for (const [k, o] of a) if (!b.has(k)) lines.push({ frame: o.frame, oldBytes: o.bytes, newBytes: 0 });
  lines.sort((x, y) => Math.abs(y.newBytes - y.oldBytes) - Math.abs(x.newBytes - x.oldBytes));
  return { oldPeak: oldR.peakBytes, newPeak: newR.peakBytes, lines: lines.filter((l) => l.newBytes !== l.oldBytes) };
}

/** `+80.0 MiB` / `-1.5 GiB` / `±0 B`. */
export function signedBytes(delta: number): string {
  if (delta === 0) return '\u00b10 B';
  return `${delta > 0 ? '+' : '-'}${humanBytes(Math.abs(delta))}`;
}

/** Change in percent of `from`, `+14.29%`; `new` when `from` is 0. */
export function signedPercent(from: number, to: number): string {
  if (from === 0) return to === 0 ? '+0.00%' : 'new';
  const p = ((to - from) / from) * 100;
  return `${p >= 0 ? '+' : ''}${p.toFixed(2)}%`;
}

/** Growth of the peak in percent (Infinity when the old peak was 0 and the new is not). */
export function peakGrowthPercent(d: ReportDiff): number {
  if (d.oldPeak === 0) return d.newPeak > 0 ? Infinity : 0;
  return ((d.newPeak - d.oldPeak) / d.oldPeak) * 100;
}

/** The text `highwater diff` prints. */
export function diffText(d: ReportDiff, limit = 10): string[] {
  const out = [
    `peak: ${humanBytes(d.oldPeak)} \u2192 ${humanBytes(d.newPeak)} (${signedBytes(d.newPeak - d.oldPeak)}, ${signedPercent(d.oldPeak, d.newPeak)})`,
  ];
  const rows = d.lines.slice(0, limit);
  if (rows.length === 0) {
    out.push('no line changed');
    return out;
  }
  out.push(`lines that changed most (of ${d.lines.length} changed):`);
  const cols = rows.map((l) => [
    signedBytes(l.newBytes - l.oldBytes),
    l.oldBytes === 0 ? 'new' : l.newBytes === 0 ? 'gone' : signedPercent(l.oldBytes, l.newBytes),
    `${humanBytes(l.oldBytes)} \u2192 ${humanBytes(l.newBytes)}`,
    fileLine(l.frame),
  ]);
  const w = [0, 1, 2, 3].map((i) => Math.max(...cols.map((c) => c[i]!.length)));
  rows.forEach((l, i) => {
    const c = cols[i]!;
    const text = `  ${c[0]!.padStart(w[0]!)}  ${c[1]!.padStart(w[1]!)}  ${c[2]!.padEnd(w[2]!)}  ${c[3]!.padEnd(w[3]!)}  ${l.frame.function}${l.frame.code ? `  ${l.frame.code}` : ''}`;
    out.push(text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' '));
  });
  return out;
}

/** Bytes under every path prefix (keys as flamegraph.pathKey). */
function prefixBytes(stacks: readonly Stack[]): Map<string, number> {
  const m = new Map<string, number>();
  // As drawn: deep stacks with their middle folded (the box's label is the same in both graphs).
  for (const s of foldForDrawing(stacks)) {
    let key = '';
    for (const f of s.frames) {
      key = pathKey(key, f);
      m.set(key, (m.get(key) ?? 0) + s.bytes);
    }
  }
  return m;
}

/** Red for growth, blue for shrinking, pale for little change; `scale` is the largest |change|. */
export function diffColour(delta: number, scale: number): string {
  if (delta === 0 || scale <= 0) return 'hsl(0,0%,88%)';
  const f = Math.min(1, Math.abs(delta) / scale);
  return `hsl(${delta > 0 ? 0 : 220},${(40 + 50 * f).toFixed(0)}%,${(90 - 40 * f).toFixed(1)}%)`;
}

export interface DiffPageInput {
  oldName: string;
  newName: string;
  old: Pick<ReportJson, 'peakBytes' | 'stacks'>;
  new: Pick<ReportJson, 'peakBytes' | 'stacks'>;
}

export function renderDiffPage(input: DiffPageInput, d: ReportDiff, limit = 20): string {
  const oldStacks = sortStacks(mergeStacks(foldImportMachinery(input.old.stacks)));
  const newStacks = sortStacks(mergeStacks(foldImportMachinery(input.new.stacks)));
  const before = prefixBytes(oldStacks);
  const after = prefixBytes(newStacks);
  // The root ("all") is the whole of each profile.
  before.set(
    '',
    oldStacks.reduce((a, s) => a + s.bytes, 0),
  );
  after.set(
    '',
    newStacks.reduce((a, s) => a + s.bytes, 0),
  );
  let scale = 0;
  for (const [k, v] of after) scale = Math.max(scale, Math.abs(v - (before.get(k) ?? 0)));
  for (const [k, v] of before) scale = Math.max(scale, Math.abs((after.get(k) ?? 0) - v));
  const note = (mine: Map<string, number>, other: Map<string, number>, sign: 1 | -1) => (key: string) => {
    const delta = sign * ((mine.get(key) ?? 0) - (other.get(key) ?? 0));
    return ` \u2014 change ${signedBytes(delta)}`;
  };
  const newer = flamegraph(newStacks, {
    title: `NEW ${input.newName}: coloured by change (red grew, blue shrank)`,
    totalBytes: input.new.peakBytes,
    colourOf: (k) => diffColour((after.get(k) ?? 0) - (before.get(k) ?? 0), scale),
    noteOf: note(after, before, 1),
    idle: 'Width: bytes in NEW. Colour: change from OLD. Hover for details; click to zoom.',
  });
  const older = flamegraph(oldStacks, {
    title: `OLD ${input.oldName}: coloured by change (blue: gone or shrank in NEW)`,
    totalBytes: input.old.peakBytes,
    colourOf: (k) => diffColour((after.get(k) ?? 0) - (before.get(k) ?? 0), scale),
    noteOf: note(before, after, -1),
    idle: 'Width: bytes in OLD. Colour: change in NEW. Hover for details; click to zoom.',
  });
  const rows = d.lines.slice(0, limit).map((l) => {
    const delta = l.newBytes - l.oldBytes;
    return (
      `<tr class="${delta > 0 ? 'grew' : 'shrank'}"><td class="n" style="background:${diffColour(delta, scale)}">${esc(signedBytes(delta))}</td>` +
      `<td class="n">${l.oldBytes === 0 ? 'new' : l.newBytes === 0 ? 'gone' : signedPercent(l.oldBytes, l.newBytes)}</td>` +
      `<td class="n">${esc(humanBytes(l.oldBytes))}</td><td class="n">${esc(humanBytes(l.newBytes))}</td>` +
      `<td>${where(l.frame)}</td><td><code>${esc(l.frame.function)}</code></td><td>${code(l.frame)}</td></tr>`
    );
  });
  const peakDelta = d.newPeak - d.oldPeak;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>highwater diff: peak ${esc(signedBytes(peakDelta))} (${esc(signedPercent(d.oldPeak, d.newPeak))})</title>
<style>
body{font-family:system-ui,"DejaVu Sans",sans-serif;margin:1.5em;color:#111;max-width:1240px}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.4em}
table{border-collapse:collapse}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}code.src{font-family:"DejaVu Sans Mono",Menlo,monospace;white-space:pre}
.peak{font-size:1.2em;font-weight:bold}.hint{font-size:.85em;color:#555}
iframe.fg{width:1200px;max-width:100%;border:0;display:block}
</style></head><body>
<h1>highwater diff</h1>
<p>OLD: <code>${esc(input.oldName)}</code><br>NEW: <code>${esc(input.newName)}</code></p>
<p class="peak" id="peak-change">Peak: ${esc(humanBytes(d.oldPeak))} \u2192 ${esc(humanBytes(d.newPeak))} (${esc(signedBytes(peakDelta))}, ${esc(signedPercent(d.oldPeak, d.newPeak))})</p>
<h2>Lines that changed most</h2>
${rows.length ? `<table id="changed-lines"><thead><tr><th class="n">change</th><th class="n">%</th><th class="n">OLD</th><th class="n">NEW</th><th>line</th><th>function</th><th>source</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>` : '<p>No line changed.</p>'}
<h2>NEW, coloured by change</h2>
<p class="hint">Widths are NEW's bytes; red frames grew, blue shrank, grey are unchanged (the deeper the colour, the larger the change). Import machinery folded out.</p>
${frame('fg-new', newer.svg, 'now')}
<h2>OLD, coloured by change</h2>
<p class="hint">Widths are OLD's bytes, so what shrank or went away is visible.</p>
${frame('fg-old', older.svg, 'near')}
<script>${LAZY_FRAMES_SCRIPT}</script>
</body></html>
`;
}
