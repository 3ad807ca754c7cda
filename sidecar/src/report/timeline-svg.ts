/**
 * Memory over time as inline SVG for index.html (no library, no network):
 * tracked bytes, the container's working set, the limit and the floor line
 * (limit − floor: where the guard stops the program), the peak and the OOM
 * moment marked. Hover shows the values of the nearest sample
 * (TIMELINE_SCRIPT, which reads the samples from the SVG's data-samples).
 */
import { escapeXml as esc, humanBytes } from './format.js';
import type { Timeline } from './model.js';

const W = 1180;
const H = 240;
const L = 70; // left margin: the byte axis labels
const R = 10;
const T = 14;
const B = 28; // bottom: the time axis labels

export interface TimelineMarks {
  /** When the report was taken because memory ran out (ms since the epoch), if it was. */
  oomMs?: number;
  /** The label of that mark. @default 'out of memory' */
  oomLabel?: string;
}

function niceStep(range: number, target: number): number {
  const raw = range / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? raw;
}

/** The plot; '' when there is nothing to plot. */
export function renderTimeline(t: Timeline, marks: TimelineMarks = {}): string {
  const s = t.samples;
  if (s.length === 0) return '';
  const t0 = s[0]![0];
  const t1 = Math.max(s[s.length - 1]![0], t0 + 1);
  let top = t.peakBytes;
  for (const [, tracked, ws, limit] of s) top = Math.max(top, tracked, ws, limit);
  top = Math.max(top * 1.05, 1);
  const x = (ms: number) => L + ((Math.min(Math.max(ms, t0), t1) - t0) / (t1 - t0)) * (W - L - R);
  const y = (b: number) => T + (1 - b / top) * (H - T - B);
  const poly = (col: number, pick = (v: number) => v > 0) => {
    const pts: string[] = [];
    for (const smp of s) if (pick(smp[col]!)) pts.push(`${x(smp[0]).toFixed(1)},${y(smp[col]!).toFixed(1)}`);
    return pts.join(' ');
  };
  const out: string[] = [];
  // Axes: bytes on the left, seconds since the first sample below.
  const bStep = niceStep(top, 4);
  for (let b = 0; b <= top; b += bStep) {
    out.push(`<line class="grid" x1="${L}" x2="${W - R}" y1="${y(b).toFixed(1)}" y2="${y(b).toFixed(1)}"/>`);
    out.push(`<text class="ax" x="${L - 4}" y="${(y(b) + 4).toFixed(1)}" text-anchor="end">${esc(humanBytes(Math.round(b)))}</text>`);
  }
  const secs = (t1 - t0) / 1000;
  const sStep = niceStep(secs, 8);
  for (let v = 0; v <= secs + 1e-9; v += sStep) {
    const px = x(t0 + v * 1000).toFixed(1);
    out.push(`<text class="ax" x="${px}" y="${H - 8}" text-anchor="middle">${Number(v.toFixed(3))} s</text>`);
  }
  const ws = poly(2);
  const lim = poly(3);
  const floorLine = s
    .filter((v) => v[3] > 0 && v[4] > 0)
    .map((v) => `${x(v[0]).toFixed(1)},${y(Math.max(0, v[3] - v[4])).toFixed(1)}`)
    .join(' ');
  if (lim) out.push(`<polyline class="limit" points="${lim}"><title>limit</title></polyline>`);
  if (floorLine) out.push(`<polyline class="floor" points="${floorLine}"><title>limit − floor: the guard stops the program here</title></polyline>`);
  if (ws) out.push(`<polyline class="ws" points="${ws}"><title>working set (container)</title></polyline>`);
  out.push(`<polyline class="tracked" points="${poly(1, () => true)}"><title>tracked by highwater</title></polyline>`);

  const mark = (id: string, ms: number, label: string, cls: string) => {
    const px = x(ms).toFixed(1);
    const anchor = x(ms) > W - 160 ? 'end' : 'start';
    out.push(
      `<g id="${id}" class="${cls}" data-t="${ms - t0}"><line x1="${px}" x2="${px}" y1="${T}" y2="${H - B}"/>` +
        `<text x="${anchor === 'end' ? Number(px) - 4 : Number(px) + 4}" y="${T + 12}" text-anchor="${anchor}">${esc(label)}</text></g>`,
    );
  };
  if (t.peakMs > 0) mark('tl-peak', t.peakMs, `peak ${humanBytes(t.peakBytes)}`, 'mk peak');
  if (marks.oomMs !== undefined && marks.oomMs > 0) mark('tl-oom', marks.oomMs, marks.oomLabel ?? 'out of memory', 'mk oom');

  const data = JSON.stringify(s.map((v) => [v[0] - t0, v[1], v[2], v[3], v[4]]));
  return (
    `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
    `data-t0="${t0}" data-samples="${esc(data)}" data-geom="${esc(JSON.stringify({ L, R, T, B, W, H, top, span: t1 - t0 }))}">` +
    '<style>.grid{stroke:#e4e4e4}.ax{font:11px system-ui,sans-serif;fill:#555}' +
    '.tracked{fill:none;stroke:#c01c28;stroke-width:2}.ws{fill:none;stroke:#1a5fb4;stroke-width:1.5}' +
    '.limit{fill:none;stroke:#333;stroke-dasharray:6 4}.floor{fill:none;stroke:#e66100;stroke-dasharray:3 3}' +
    '.mk line{stroke-width:1.5}.mk text{font:bold 12px system-ui,sans-serif}.peak line{stroke:#c01c28}.peak text{fill:#c01c28}' +
    '.oom line{stroke:#000;stroke-dasharray:4 2}.oom text{fill:#000}#tl-cursor{stroke:#777}' +
    '</style>' +
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>` +
    out.join('') +
    `<line id="tl-cursor" x1="0" x2="0" y1="${T}" y2="${H - B}" visibility="hidden"/>` +
    `<rect id="tl-hover" x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="transparent"/>` +
    '</svg>'
  );
}

/** Hover readout: the nearest sample's values in #tl-readout. */
export const TIMELINE_SCRIPT = String.raw`
(function () {
  var svg = document.getElementById('timeline');
  if (!svg) return;
  var S = JSON.parse(svg.getAttribute('data-samples'));
  var G = JSON.parse(svg.getAttribute('data-geom'));
  var out = document.getElementById('tl-readout');
  var cursor = document.getElementById('tl-cursor');
  var idle = out.textContent;
  function human(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], k = 0, v = b;
    while (Math.abs(v) >= 1024 && k < u.length - 1) { v /= 1024; k++; }
    return k === 0 ? b + ' B' : v.toFixed(1) + ' ' + u[k];
  }
  function at(ev) {
    var box = svg.getBoundingClientRect();
    var px = (ev.clientX - box.left) * (G.W / box.width);
    var t = ((px - G.L) / (G.W - G.L - G.R)) * G.span;
    var lo = 0, hi = S.length - 1;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (S[mid][0] < t) lo = mid + 1; else hi = mid; }
    if (lo > 0 && Math.abs(S[lo - 1][0] - t) < Math.abs(S[lo][0] - t)) lo--;
    return S[lo];
  }
  var hover = document.getElementById('tl-hover');
  hover.addEventListener('mousemove', function (ev) {
    var s = at(ev);
    var px = G.L + (s[0] / (G.span || 1)) * (G.W - G.L - G.R);
    cursor.setAttribute('x1', px); cursor.setAttribute('x2', px); cursor.setAttribute('visibility', 'visible');
    var parts = ['+' + (s[0] / 1000).toFixed(3) + ' s', 'tracked ' + human(s[1])];
    if (s[2] > 0) parts.push('working set ' + human(s[2]));
    if (s[3] > 0) parts.push('limit ' + human(s[3]));
    if (s[4] > 0) parts.push('floor ' + human(s[4]));
    out.textContent = parts.join(' \u2014 ');
  });
  hover.addEventListener('mouseleave', function () { out.textContent = idle; cursor.setAttribute('visibility', 'hidden'); });
})();
`;
