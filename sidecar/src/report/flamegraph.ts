/**
 * Interactive, self-contained flamegraph SVG (icicle layout: root at the top).
 * Built with string arrays, no DOM library: 100 000 stacks must render in
 * well under a second or two. Interaction lives in flamegraph-script.ts.
 */
import { FLAMEGRAPH_SCRIPT } from './flamegraph-script.js';
import { basename, escapeXml, humanBytes, percent } from './format.js';
import type { Frame, Stack } from './model.js';
import { buildTree, foldedLabel, foldForDrawing, type FlameNode } from './stacks.js';

export interface FlamegraphOptions {
  title: string;
  /** Denominator of "% of peak": the peak bytes of the profile. */
  totalBytes: number;
  /** Callee first: stacks merged by their innermost frame. */
  reversed?: boolean;
  /** @default 1200 */
  width?: number;
  /**
   * Fill of a frame, given the folded labels of its path (root first, as
   * `stacks.foldedLabel`) and its bytes; default: yellow → red by share.
   * The differential flamegraph colours by growth this way.
   */
  colourOf?: (pathKey: string, bytes: number) => string;
  /** Extra text after a frame's tooltip (e.g. the change in a diff), by path key. */
  noteOf?: (pathKey: string) => string;
  /** Text of the details bar when nothing is hovered. */
  idle?: string;
  /**
   * Frames narrower than this at full width are not drawn. @default 0.1
   * (index.html uses 1: a page that opens in well under 2 s with 100 000
   * stacks; the separate SVG files keep the finer cut for zooming deep).
   */
  minPx?: number;
  /**
   * A tree already built from the same `stacks` (and `reversed`) with a cut no
   * coarser than `minPx`: drawn with this `minPx` without building it again.
   */
  tree?: FlameNode;
  /**
   * At most this many frames are drawn: when the tree has more at `minPx`,
   * the narrowest are left out (as `minPx` leaves them out) until it fits.
   * @default MAX_BOXES
   */
  maxBoxes?: number;
}

/**
 * Frames drawn per flamegraph, at most. Deep, distinct stacks (4 000 stacks
 * 150 frames deep) made trees of ~300 000 frames that took a minute and
 * hundreds of MB to render, for boxes a fraction of a pixel wide.
 */
export const MAX_BOXES = 20_000;

/**
 * The smallest width (bytes) a node needs to be drawn so that at most
 * `maxBoxes` nodes are, `minBytes` at least. A child is never wider than its
 * parent, so the nodes at or above any width form a tree with the root.
 */
export function boxCut(root: FlameNode, minBytes: number, maxBoxes: number): number {
  const widths: number[] = [];
  const todo: FlameNode[] = [root];
  while (todo.length > 0) {
    const n = todo.pop()!;
    for (const c of n.children) {
      if (c.bytes < minBytes) break; // largest first
      widths.push(c.bytes);
      todo.push(c);
    }
  }
  if (widths.length <= maxBoxes) return minBytes;
  widths.sort((a, b) => b - a);
  // Strictly wider than the first width left out: ties are left out together.
  return widths[maxBoxes]! + 1;
}

const PAD = 10;
const TOP = 56; // title + controls
const ROW = 34; // two text lines: label, then the source line
const BOTTOM = 48; // details bar: two lines
const LABEL_CHAR = 7; // average advance of the 12px sans label font, px
const CODE_CHAR = 6.7; // advance of the 11px monospace source font, px
// Nodes narrower than this at full width are not drawn; their bytes stay in
// the parent's width (flamegraph.pl's --minwidth default). Keeps huge
// profiles to a size a browser can open.
const MIN_PX = 0.1;

/** Same rule as the embedded script's `fit`, so the no-JS view matches. */
function fit(text: string, px: number, charPx: number): string {
  const max = Math.floor((px - 6) / charPx);
  if (max < 3) return '';
  return text.length <= max ? text : `${text.slice(0, max - 1)}\u2026`;
}

/** Wider = redder: hue runs from yellow (tiny share) to red (all of it). */
function colour(fraction: number): string {
  const f = Math.min(1, Math.max(0, fraction));
  return `hsl(${(50 - 50 * f).toFixed(1)},90%,${(74 - 18 * f).toFixed(1)}%)`;
}

function frameLabel(f: Frame): string {
  return f.file === '' && f.line === 0 ? f.function : `${f.function} (${basename(f.file)}:${f.line})`;
}

/** The source line as written: its indentation kept (as spaces), as Fil shows it. */
export function indentedCode(f: Frame): string {
  return f.code && f.indent ? ' '.repeat(f.indent) + f.code : f.code;
}

/** The SVG text. */
export function renderFlamegraph(stacks: readonly Stack[], opts: FlamegraphOptions): string {
  return flamegraph(stacks, opts).svg;
}

/** The SVG text and the tree it draws (index.html locates frames in it). */
export function flamegraph(stacks: readonly Stack[], opts: FlamegraphOptions): { svg: string; root: FlameNode; minBytes: number } {
  const svgWidth = opts.width ?? 1200;
  const width = svgWidth - 2 * PAD;
  const rootBytes = stacks.reduce((a, s) => a + (s.bytes > 0 ? s.bytes : 0), 0);
  const minPx = opts.minPx ?? MIN_PX;
  const pxBytes = rootBytes > 0 ? (rootBytes * minPx) / width : 0;
  // Deep stacks are drawn with their middle folded (stacks.ts DRAW_MAX); widths are unchanged.
  const root = opts.tree ?? buildTree(foldForDrawing(stacks), opts.reversed ?? false, pxBytes);
  const minBytes = boxCut(root, pxBytes, opts.maxBoxes ?? MAX_BOXES);
  const total = opts.totalBytes > 0 ? opts.totalBytes : rootBytes;

  // Frame table for the script: [function, file, line, code, basename].
  // Keyed by value, not object: equal frames from different stacks share a row.
  const frameIds = new Map<string, number>();
  const table: Array<[string, string, number, string, string]> = [];
  const frameId = (f: Frame): number => {
    const key = `${f.file}\0${f.line}\0${f.function}`;
    let id = frameIds.get(key);
    if (id === undefined) {
      frameIds.set(key, (id = table.length));
      table.push([f.function, f.file, f.line, indentedCode(f), basename(f.file)]);
    }
    return id;
  };

  const body: string[] = [];
  let maxDepth = 0;
  // Pre-order walk with an explicit stack (deep recursion must not overflow).
  const keyed = opts.colourOf !== undefined || opts.noteOf !== undefined;
  const todo: Array<{ n: FlameNode; x: number; d: number; key: string }> = [{ n: root, x: 0, d: 0, key: '' }];
  while (todo.length > 0) {
    const { n, x, d, key } = todo.pop()!;
    if (d > maxDepth) maxDepth = d;
    const px = PAD + (rootBytes > 0 ? (x / rootBytes) * width : 0);
    const pw = rootBytes > 0 ? (n.bytes / rootBytes) * width : width;
    const y = TOP + d * ROW;
    const fid = n.frame ? frameId(n.frame) : -1;
    const label = n.frame ? frameLabel(n.frame) : 'all';
    const share = rootBytes > 0 ? n.bytes / rootBytes : 0;
    const where = n.frame && n.frame.file !== '' ? ` \u2014 ${n.frame.file}:${n.frame.line}` : '';
    const code = n.frame ? indentedCode(n.frame) : '';
    const note = opts.noteOf ? opts.noteOf(key) : '';
    // The tooltip has the whole source line; the frame shows what fits.
    const tip = `${label}${where} \u2014 ${humanBytes(n.bytes)} (${percent(n.bytes, total)})${note}${code ? `\n${code}` : ''}`;
    body.push(
      `<g class="f" data-x="${x}" data-w="${n.bytes}" data-d="${d}" data-f="${fid}">`,
      `<title>${escapeXml(tip)}</title>`,
      `<rect x="${px.toFixed(2)}" y="${y}" width="${pw.toFixed(2)}" height="${ROW - 1}" rx="2" fill="${opts.colourOf ? opts.colourOf(key, n.bytes) : colour(share)}"/>`,
      `<text class="l" x="${(px + 3).toFixed(2)}" y="${y + 14}">${escapeXml(fit(label, pw, LABEL_CHAR))}</text>`,
      `<text class="c" x="${(px + 3).toFixed(2)}" y="${y + 28}">${escapeXml(fit(code, pw, CODE_CHAR))}</text>`,
      '</g>\n',
    );
    // Children sit left-aligned in their parent (the parent's self bytes and
    // pruned children are the gap at the right); pushed in reverse so the
    // largest (first) is emitted first.
    const kids: Array<{ n: FlameNode; x: number; d: number; key: string }> = [];
    let cx = x;
    for (const c of n.children) {
      if (c.bytes < minBytes) break; // largest first: the rest are narrower (a finer prebuilt tree)
      kids.push({ n: c, x: cx, d: d + 1, key: keyed ? pathKey(key, c.frame!) : '' });
      cx += c.bytes;
    }
    for (let i = kids.length - 1; i >= 0; i--) todo.push(kids[i]!);
  }

  const height = TOP + (maxDepth + 1) * ROW + BOTTOM;
  const layout = { pad: PAD, width, total, labelChar: LABEL_CHAR, codeChar: CODE_CHAR, minPx };
  // In CDATA only "]]>" ends the section; outside JSON strings it cannot
  // occur, inside them the escape keeps the same value. U+FFFE/FFFF are not
  // XML characters even in CDATA.
  const data = `var F=${JSON.stringify(table)};var L=${JSON.stringify(layout)};`
    .replace(/]]>/g, ']]\\u003e')
    // index.html embeds this SVG in HTML, where "</script" is worth never having inside a script.
    .replace(/<\//g, '<\\/')
    .replace(/[\uFFFE\uFFFF]/g, '\uFFFD');
  const idle = opts.idle ?? `Peak ${humanBytes(total)}. Hover a frame for details; click to zoom; Ctrl+F to search.`;

  const svg = [
    '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n',
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${svgWidth}" height="${height}" `,
    `viewBox="0 0 ${svgWidth} ${height}">\n`,
    '<style>',
    'text{font-family:Verdana,"DejaVu Sans",sans-serif;font-size:12px;fill:#000}',
    'text.c{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:11px;fill:#222;white-space:pre}',
    '.f{cursor:pointer}.f:hover rect{stroke:#000;stroke-width:1}.f.a{opacity:.55}',
    '.f.m rect{fill:#d24cff}#title{font-size:17px;font-weight:bold}',
    '.btn{fill:#1a5fb4;cursor:pointer;text-decoration:underline}.btn.off{fill:#999}',
    '#details{font-size:12px}#source{font-size:12px}#matched{font-size:12px}',
    '</style>\n',
    `<rect width="${svgWidth}" height="${height}" fill="#fafaf7"/>\n`,
    `<text id="title" x="${svgWidth / 2}" y="22" text-anchor="middle">${escapeXml(opts.title)}</text>\n`,
    `<text id="reset" class="btn off" x="${PAD}" y="42">Reset zoom</text>\n`,
    `<foreignObject x="${svgWidth - PAD - 260}" y="26" width="260" height="26">`,
    '<input xmlns="http://www.w3.org/1999/xhtml" id="search" type="search" placeholder="Search (regex): function, file, code" ',
    'style="width:250px;font-size:12px;box-sizing:border-box"/></foreignObject>\n',
    `<g id="frames">\n`,
    ...body,
    '</g>\n',
    `<text id="details" x="${PAD}" y="${height - 28}">${escapeXml(idle)}</text>\n`,
    `<text id="source" class="c" x="${PAD}" y="${height - 10}"></text>\n`,
    `<text id="matched" x="${svgWidth - PAD}" y="${height - 28}" text-anchor="end"></text>\n`,
    `<script type="text/ecmascript"><![CDATA[${data}\n${FLAMEGRAPH_SCRIPT}]]></script>\n`,
    '</svg>\n',
  ].join('');
  return { svg, root, minBytes };
}

/** Key of a frame's path in the tree: the folded labels, root first, `;`-separated. */
export function pathKey(parentKey: string, f: Frame): string {
  return parentKey === '' ? foldedLabel(f) : `${parentKey};${foldedLabel(f)}`;
}

/** The height a rendered flamegraph asked for, so index.html can size its <object>. */
export function svgHeight(svg: string): number {
  const m = /<svg [^>]*?height="(\d+)"/.exec(svg.slice(0, 512));
  return m ? Number(m[1]) : 600;
}
