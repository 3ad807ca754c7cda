/**
 * index.html: the page a human opens first, answer first. One self-contained
 * file: inline CSS and script, the flamegraphs embedded as iframe `srcdoc`
 * (each keeps its own script and ids), the timeline as inline SVG, no
 * network. The separate SVG files are the same flamegraphs, for tools.
 *
 * Order: why the report exists and the peak; the top lines (own code,
 * clickable: zooms the flamegraph); the allocation that tripped an OOM; the
 * timeline; the flamegraphs; run details. An OOM report shows what was live
 * when it ran out first, then the peak.
 */
import { basename, escapeXml as esc, humanBytes, percent } from './format.js';
import { flamegraph, indentedCode, svgHeight } from './flamegraph.js';
import { foldImportMachinery, hasImportMachinery, ownFrameIndex } from './frames.js';
import type { Frame, OomReason, OutOfSpaceTable, ProfileData, ReportJson, Stack, Trigger } from './model.js';
import { drawnChain, mergeStacks, sortStacks, type FlameNode } from './stacks.js';
import { renderTimeline, TIMELINE_SCRIPT } from './timeline-svg.js';
import { fileLine, locate, processShort, topLines, type TopLine } from './toplines.js';
import { containerSentence, processesSection } from './processes-html.js';

export const FILES = {
  html: 'index.html',
  svg: 'peak-memory.svg',
  reversedSvg: 'peak-memory-reversed.svg',
  folded: 'peak-memory.folded',
  json: 'report.json',
} as const;

const TOP_ROWS = 10;

const REASONS: Record<OomReason, string> = {
  'low-available': 'available memory fell under the floor',
  swap: 'the process started swapping (swap in use exceeded the memory still available)',
  'failed-allocation': 'an allocation failed (the allocator returned no memory)',
};

/** Why the report exists, in words. */
export function explainTrigger(trigger: Trigger, reason: OomReason | null, floorBytes = 0): string {
  switch (trigger) {
    case 'oom': {
      const why = reason ? REASONS[reason] : 'the watcher declared the process out of memory';
      const floor = reason === 'low-available' && floorBytes > 0 ? ` (floor ${humanBytes(floorBytes)})` : '';
      return `Out of memory: ${why}${floor}. highwater stopped the process (exit code 53) before the kernel OOM killer did.`;
    }
    case 'killed':
      return 'Killed: the process died from SIGKILL (most likely the kernel OOM killer). This report was read post-mortem from the shared state file.';
    case 'exit':
      return 'Normal exit: the peak memory use of the whole run.';
    case 'signal':
      return 'SIGUSR2: the peak so far, dumped on request while the process kept running.';
    case 'api':
      return 'Python API: the peak of the code profiled with highwater.api.profile().';
    case 'request':
      return 'Requested: the watcher asked for a dump while the process kept running.';
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** JSON inside a <script> element: `</script>` and `<!--` must not appear. */
function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export function where(f: Frame | undefined): string {
  if (!f) return '<em>no Python frame</em>';
  if (f.file === '' && f.line === 0) return `<em>${esc(f.function)}</em>`;
  return `<span class="loc" title="${esc(f.file)}:${f.line}">${esc(basename(f.file))}:${f.line}</span>`;
}

/** Source text in tables: trimmed (columns line up); the flamegraphs keep the indentation. */
export function code(f: Frame): string {
  return f.code ? `<code class="src" title="${esc(indentedCode(f))}">${esc(f.code)}</code>` : '';
}

function chainList(frames: readonly Frame[], from = 0): string {
  const items = frames.map(
    (f, i) => `<li${i === from ? ' class="own"' : ''}>${where(f)} <code>${esc(f.function)}</code>${f.code ? `<br>${code(f)}` : ''}</li>`,
  );
  return `<ol class="chain">${items.join('')}</ol>`;
}

/**
 * One flamegraph in an iframe (its own document: the SVG's script and ids
 * stay apart from the page's and the other graphs'). `now`: srcdoc in the
 * page; `near`: kept as JSON, filled when scrolled near (the page opens
 * fast); `hidden`: kept as JSON, filled when the import toggle asks for it.
 */
export function frame(id: string, svg: string, mode: 'now' | 'near' | 'hidden'): string {
  const doc = `<!DOCTYPE html><html><head><meta charset="utf-8"><style>body{margin:0}</style></head><body>${svg}</body></html>`;
  const style = `height:${svgHeight(svg)}px`;
  if (mode === 'now')
    return `<iframe class="fg" id="${id}" title="flamegraph" style="${style}" srcdoc="${doc.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"></iframe>`;
  return (
    `<iframe class="fg${mode === 'near' ? ' near' : ''}" id="${id}" title="flamegraph" style="${style}"${mode === 'hidden' ? ' hidden' : ''}></iframe>` +
    `<script type="application/json" id="${id}-doc">${scriptJson(doc)}</script>`
  );
}

/** Frames under a pixel are left out of the page's flamegraphs (the SVG files keep them). */
const PAGE_MIN_PX = 1;
/** And at most this many frames per flamegraph of the page (the files: flamegraph.ts MAX_BOXES). */
const PAGE_MAX_BOXES = 2_500;

interface View {
  /** Section id: `peak`, or `live` (what was live when it ran out). */
  id: string;
  heading: string;
  totalBytes: number;
  rows: TopLine[];
  /** Per row, where its line is in the normal flamegraph: folded view, full view. */
  targets: Array<{ folded: { x: number; d: number } | null; full: { x: number; d: number } | null }>;
  folded: { normal: string; reversed: string };
  full: { normal: string; reversed: string } | null;
  /** The SVG files (finer cut), when asked for. */
  files: { normal: string; reversed: string } | null;
}

/** Files' and page's flamegraphs of one set of stacks, the trees built once. */
interface Drawn {
  file: { normal: string; reversed: string } | null;
  page: { normal: string; reversed: string };
  root: FlameNode;
  minBytes: number;
}

function draw(stacks: Stack[], title: string, totalBytes: number, withFiles: boolean): Drawn {
  const rev = `${title} (reversed: allocation sites first)`;
  const page = { totalBytes, minPx: PAGE_MIN_PX, maxBoxes: PAGE_MAX_BOXES };
  if (!withFiles) {
    const n = flamegraph(stacks, { title, ...page });
    const r = flamegraph(stacks, { title: rev, reversed: true, ...page });
    return { file: null, page: { normal: n.svg, reversed: r.svg }, root: n.root, minBytes: n.minBytes };
  }
  // The files keep the finer 0.1-px cut, for zooming deep; the page draws the same trees at 1 px.
  const n = flamegraph(stacks, { title, totalBytes });
  const r = flamegraph(stacks, { title: rev, totalBytes, reversed: true });
  const pn = flamegraph(stacks, { title, ...page, tree: n.root });
  const pr = flamegraph(stacks, { title: rev, reversed: true, ...page, tree: r.root });
  return { file: { normal: n.svg, reversed: r.svg }, page: { normal: pn.svg, reversed: pr.svg }, root: n.root, minBytes: pn.minBytes };
}

function buildView(id: string, heading: string, all: Stack[], totalBytes: number, title: string, withFiles = false): View {
  const withImports = hasImportMachinery(all);
  const foldedStacks = withImports ? sortStacks(mergeStacks(foldImportMachinery(all))) : all;
  const drawn = draw(foldedStacks, title, totalBytes, withFiles);
  const rows = topLines(foldedStacks, TOP_ROWS);
  let full: View['full'] = null;
  let fullChains = new Map<string, Frame[]>();
  let fullBelow = new Map<string, Frame[]>();
  let fullMinBytes = 0;
  let fullRoot: ReturnType<typeof flamegraph>['root'] | null = null;
  if (withImports) {
    const n = flamegraph(all, { title: `${title} (with import machinery)`, totalBytes, minPx: PAGE_MIN_PX, maxBoxes: PAGE_MAX_BOXES });
    const r = flamegraph(all, {
      title: `${title} (with import machinery; reversed)`,
      totalBytes,
      reversed: true,
      minPx: PAGE_MIN_PX,
      maxBoxes: PAGE_MAX_BOXES,
    });
    full = { normal: n.svg, reversed: r.svg };
    fullRoot = n.root;
    fullMinBytes = n.minBytes;
    const fullLines = topLines(all, 1000);
    fullChains = new Map(fullLines.map((t) => [fileLine(t.frame) + t.frame.function, t.chain]));
    fullBelow = new Map(fullLines.map((t) => [fileLine(t.frame) + t.frame.function, t.below]));
  }
  const targets = rows.map((r) => {
    const chain = fullChains.get(fileLine(r.frame) + r.frame.function);
    const full = fullRoot && chain ? locate(fullRoot, drawnChain(chain, fullBelow.get(fileLine(r.frame) + r.frame.function) ?? []), fullMinBytes) : null;
    return { folded: locate(drawn.root, drawnChain(r.chain, r.below), drawn.minBytes), full };
  });
  return { id, heading, totalBytes, rows, targets, folded: drawn.page, full, files: drawn.file };
}

/** "2 callers, 1 frame below (largest of 3 paths)". */
function summaryOf(r: TopLine): string {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const parts: string[] = [];
  const callers = r.chain.length - 1 - (r.process ? 1 : 0); // the process frame is no caller
  if (callers > 0) parts.push(plural(callers, 'caller'));
  if (r.below.length > 0) parts.push(`${plural(r.below.length, 'frame')} below`);
  return `${parts.join(', ')}${r.paths > 1 ? ` (largest of ${r.paths} paths)` : ''}`;
}

function table(v: View): string {
  // Container-wide reports name each line's process (the same line in two processes is two rows).
  const byProcess = v.rows.some((r) => r.process);
  const rows = v.rows.map((r, i) => {
    const t = v.targets[i]!;
    const attrs = t.folded ? ` data-x="${t.folded.x}" data-d="${t.folded.d}"` : '';
    const fattrs = t.full ? ` data-fx="${t.full.x}" data-fd="${t.full.d}"` : '';
    const chainText = r.chain
      .filter((f) => f.pid === undefined)
      .map((f) => `${fileLine(f)} ${f.function}`)
      .join(' \u2192 ');
    const callers =
      r.chain.length > (r.process ? 2 : 1) || r.below.length > 0
        ? `<details><summary>${summaryOf(r)}</summary>${chainList([...r.chain, ...r.below], r.chain.length - 1)}</details>`
        : '';
    return (
      `<tr class="line" data-fg="fg-${v.id}"${attrs}${fattrs} title="${esc(chainText)}">` +
      `<td class="n">${i + 1}</td>${byProcess ? `<td class="proc">${r.process ? esc(processShort(r.process)) : ''}</td>` : ''}<td>${where(r.frame)}</td><td><code>${esc(r.frame.function)}</code>${callers}</td>` +
      `<td>${code(r.frame)}</td><td class="n">${esc(humanBytes(r.bytes))}</td><td class="n">${percent(r.bytes, v.totalBytes)}</td></tr>`
    );
  });
  return (
    `<table class="top" id="top-lines-${v.id}"><thead><tr><th>#</th>${byProcess ? '<th>process</th>' : ''}<th>line</th><th>function</th><th>source</th>` +
    `<th class="n">bytes</th><th class="n">% of ${v.id === 'live' ? 'live' : 'peak'}</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>` +
    '<p class="hint">Own code only: library frames below a line are charged to it. Click a row to zoom the flamegraph to it; hover for the caller chain.</p>'
  );
}

function flamegraphs(v: View): string {
  return (
    `<h3>${esc(v.heading)}: by call stack (callers at the top)</h3>` +
    frame(`fg-${v.id}`, v.folded.normal, 'now') +
    (v.full ? frame(`fg-${v.id}-full`, v.full.normal, 'hidden') : '') +
    `<h3>${esc(v.heading)}: reversed (allocation sites at the top)</h3>` +
    frame(`fg-${v.id}-rev`, v.folded.reversed, 'near') +
    (v.full ? frame(`fg-${v.id}-rev-full`, v.full.reversed, 'hidden') : '')
  );
}

const OUT_OF_SPACE_NAMES: Record<OutOfSpaceTable, string> = { stacks: 'stack table', functions: 'function table', names: 'name area' };

/** Says what the rendering limits cut (report.json `truncation`), if anything. */
function truncationNote(report: ReportJson): string {
  const t = report.truncation;
  if (!t) return '';
  const parts: string[] = [];
  if (t.foldedStacks > 0) {
    parts.push(`${t.foldedStacks} stacks deeper than ${t.maxDepth} frames were folded (${t.foldedFrames} frames in the middle of them left out)`);
  }
  if (t.otherStacks > 0) {
    parts.push(
      `past ${t.maxStacks} stacks, the ${t.otherStacks} smallest (${humanBytes(t.otherBytes)} in all) were merged into one "smaller stacks merged" stack`,
    );
  }
  if (t.outOfSpace?.length) {
    parts.push(
      `the run dir ran out of space, so the shim's ${t.outOfSpace.map((n) => OUT_OF_SPACE_NAMES[n]).join(' and ')} stopped growing: stacks first seen after that are folded into their callers (give the run dir more room)`,
    );
  }
  return `<p class="why" id="truncation">Limits: ${esc(parts.join('; '))}.</p>`;
}

function row(label: string, value: string): string {
  return `<tr><th>${esc(label)}</th><td>${value}</td></tr>`;
}

export interface Page {
  html: string;
  /** The peak flamegraphs as standalone files (import machinery folded out, as the page shows them by default). */
  svg: string;
  reversedSvg: string;
}

/** `all`: the peak stacks, merged and sorted (full frames). */
export function renderPage(data: ProfileData, report: ReportJson, all: Stack[]): Page {
  const p = data.process;
  const m = data.memory;
  const peak = report.peakBytes;
  const others = (report.container?.processCount ?? 1) - 1;
  const cmd = (p.argv.join(' ') || `pid ${p.pid}`) + (others > 0 ? ` and ${others} other process${others === 1 ? '' : 'es'}` : '');
  const title = `highwater: peak memory ${mib(peak)} \u2014 ${cmd}`;
  const when = data.timeMs > 0 ? new Date(data.timeMs).toISOString() : 'unknown';
  const fgTitle = `Peak memory ${humanBytes(peak)}: ${cmd}`;

  const views: View[] = [];
  const liveView = report.trigger === 'oom' || (report.trigger === 'killed' && data.container !== undefined);
  const live = liveView && data.currentStacks && data.currentStacks.length > 0 ? sortStacks(mergeStacks(data.currentStacks)) : null;
  const liveBytes = live ? live.reduce((a, s) => a + s.bytes, 0) : 0;
  if (live) views.push(buildView('live', 'Live when it ran out', live, liveBytes, `Live when it ran out ${humanBytes(liveBytes)}: ${cmd}`));
  const peakView = buildView(
    'peak',
    live ? 'At the peak' : report.trigger === 'signal' || report.trigger === 'request' ? 'At the peak so far' : 'At the peak',
    all,
    peak,
    fgTitle,
    true,
  );
  views.push(peakView);

  const first = views[0]!.rows[0];
  const answer = first
    ? ` The line holding the most ${live ? 'when it ran out' : 'at the peak'}: ${first.process ? `in ${esc(processShort(first.process))}, ` : ''}<b>${where(first.frame)}</b> <code>${esc(first.frame.function)}</code> (${esc(humanBytes(first.bytes))}).`
    : '';
  const oomAlloc = report.oomAllocation;
  let oomHtml = '';
  if (oomAlloc) {
    const i = ownFrameIndex(oomAlloc.frames);
    const own = oomAlloc.frames[i];
    oomHtml =
      `<h2>The allocation that tripped it</h2><p id="oom-allocation">${esc(humanBytes(oomAlloc.bytes))} requested at ${where(own)} ` +
      `${own ? `<code>${esc(own.function)}</code> ${code(own)}` : ''}</p>` +
      (oomAlloc.frames.length > 1 ? `<details><summary>whole stack</summary>${chainList(oomAlloc.frames, i)}</details>` : '');
  }

  const withImports = views.some((v) => v.full !== null);
  const toggle = withImports
    ? '<p class="toggle"><label><input type="checkbox" id="show-imports"> show the import machinery (<code>&lt;frozen importlib._bootstrap&gt;</code> frames; hidden by default, their memory charged to the <code>import</code> line)</label></p>'
    : '';
  const tl = data.timeline
    ? renderTimeline(data.timeline, {
        oomMs: report.trigger === 'oom' || report.trigger === 'killed' ? data.timeMs : undefined,
        // SIGKILL is most often the kernel's OOM killer, but not always.
        oomLabel: report.trigger === 'killed' ? 'killed (SIGKILL)' : 'out of memory',
      })
    : '';
  const tlHtml = tl
    ? `<h2>Memory over time</h2>${tl}<p id="tl-readout" class="hint">Red: tracked by highwater; blue: the container's working set; dashed: the limit and (orange) limit − floor. Hover for values.</p>`
    : '';
  const fa = report.failedAllocation;
  const failed = fa
    ? `<h2 id="failed">Refused allocations</h2><p>${fa.count.toLocaleString('en-US')} allocation${fa.count === 1 ? ' was' : 's were'} refused ` +
      `(the program got a MemoryError). The last one, ${esc(humanBytes(fa.bytes))}, was requested at:</p>${chainList(fa.frames, ownFrameIndex(fa.frames))}`
    : '';

  const sections = views.map((v) => `<section id="${v.id}"><h2>${esc(v.heading)}: ${esc(humanBytes(v.totalBytes))}</h2>${table(v)}</section>`).join('\n');
  const graphs = views.map((v) => `<section class="graphs">${flamegraphs(v)}</section>`).join('\n');

  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,"DejaVu Sans",sans-serif;margin:1.5em;color:#111;max-width:1240px}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:1.4em}h3{font-size:1em;margin:1.2em 0 .3em}
table{border-collapse:collapse}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}code.src{font-family:"DejaVu Sans Mono",Menlo,monospace;white-space:pre}
table.top tr.line{cursor:pointer}table.top tr.line:hover{background:#fff4e5}table.top td:nth-child(4){max-width:520px;overflow:hidden}
details summary{font-size:.85em;color:#555;cursor:pointer}ol.chain{margin:.3em 0;padding-left:1.6em;font-size:.9em}ol.chain li.own{font-weight:bold}
.why{font-size:1.1em;padding:.6em .8em;background:#fff4e5;border-left:4px solid #e66100}
.peak{font-size:1.2em;font-weight:bold}.hint{font-size:.85em;color:#555}
iframe.fg{width:1200px;max-width:100%;border:0;display:block}iframe.fg[hidden]{display:none}
</style></head><body>
<h1>${esc(title)}</h1>
<p class="why" id="trigger">${esc(explainTrigger(report.trigger, report.oomReason, m.floorBytes ?? 0))}${answer}${containerSentence(report)}</p>
<p class="peak" id="peak">Peak memory: ${mib(peak)} (${peak.toLocaleString('en-US')} bytes)${live ? `; live when it ran out: ${mib(liveBytes)}` : ''}</p>
${toggle}
${sections}
${report.processes ? processesSection(report) : ''}
${oomHtml}
${tlHtml}
<h2>Flamegraphs</h2>
<p class="hint">Wider = more memory. Hover a frame for details, click to zoom, Ctrl+F to search. Also as files: <a href="${FILES.svg}">${FILES.svg}</a>, <a href="${FILES.reversedSvg}">${FILES.reversedSvg}</a> (the peak).</p>
${graphs}
<h2>Run details</h2>
<table id="details">
${row('Command', `<code>${esc(p.argv.join(' '))}</code>`)}
${row('PID', String(p.pid))}
${row('Python', esc(p.python || 'unknown'))}
${row('Working directory', esc(p.cwd || 'unknown'))}
${row('Recorded at', esc(when))}
${report.sampling ? row('Stacks', `sampled: about one per ${esc(humanBytes(report.sampling.rateBytes))} allocated; the bytes per line are estimates, the peak is exact`) : ''}
${row('Memory readings from', esc(m.source))}
${row('Limit', m.limitBytes > 0 ? esc(humanBytes(m.limitBytes)) : 'no limit / unknown')}
${row('Working set', esc(humanBytes(m.workingSetBytes)))}
${row('Available', esc(humanBytes(m.availableBytes)))}
${row('Swap used', esc(humanBytes(m.swapBytes)))}
${m.floorBytes ? row('Floor', esc(humanBytes(m.floorBytes))) : ''}
</table>
${failed}
${truncationNote(report)}
<h2>Data</h2>
<ul><li><a href="${FILES.folded}">${FILES.folded}</a> (folded stacks of the peak, all frames: <code>file:line (function);&#8230; bytes</code>, for other flamegraph tools)</li>
<li><a href="${FILES.json}">${FILES.json}</a> (machine-readable report, all frames)</li></ul>
<script>${LAZY_FRAMES_SCRIPT}${PAGE_SCRIPT}${tl ? TIMELINE_SCRIPT : ''}</script>
</body></html>
`;
  return { html, svg: peakView.files!.normal, reversedSvg: peakView.files!.reversed };
}

/**
 * Flamegraphs kept as JSON (frame() modes `near` and `hidden`): `near` ones
 * are filled when they come near the screen; `highwaterFill(iframe)` fills one.
 */
export const LAZY_FRAMES_SCRIPT = String.raw`
(function () {
  function fill(f) {
    var doc = document.getElementById(f.id + '-doc');
    if (doc && !f.getAttribute('srcdoc')) f.setAttribute('srcdoc', JSON.parse(doc.textContent));
  }
  window.highwaterFill = fill;
  var near = document.querySelectorAll('iframe.fg.near');
  if (near.length && 'IntersectionObserver' in window) {
    var io = new IntersectionObserver(function (es) {
      es.forEach(function (e) { if (e.isIntersecting) { fill(e.target); io.unobserve(e.target); } });
    }, { rootMargin: '600px' });
    near.forEach(function (f) { io.observe(f); });
  } else near.forEach(fill);
})();
`;

/** Row click → zoom; the import toggle swaps each flamegraph for its full twin (filled on first use). */
const PAGE_SCRIPT = String.raw`
(function () {
  var box = document.getElementById('show-imports');
  function full() { return !!(box && box.checked); }
  function frameOf(id) {
    var f = document.getElementById(full() && document.getElementById(id + '-full') ? id + '-full' : id);
    return f;
  }
  document.querySelectorAll('tr.line').forEach(function (tr) {
    tr.addEventListener('click', function (e) {
      if (e.target.closest('details')) return; // expanding the caller chain is not a zoom
      var useFull = full() && tr.hasAttribute('data-fx');
      var x = tr.getAttribute(useFull ? 'data-fx' : 'data-x'), d = tr.getAttribute(useFull ? 'data-fd' : 'data-d');
      if (x === null) return;
      var f = frameOf(tr.getAttribute('data-fg'));
      f.scrollIntoView({ block: 'start' });
      f.contentWindow.postMessage({ highwater: 'zoom', x: +x, d: +d }, '*');
    });
  });
  var fill = window.highwaterFill;
  if (box) box.addEventListener('change', function () {
    document.querySelectorAll('iframe.fg').forEach(function (f) {
      var isFull = /-full$/.test(f.id);
      if (isFull) fill(f);
      var twin = document.getElementById(isFull ? f.id.replace(/-full$/, '') : f.id + '-full');
      if (!twin) return;
      f.hidden = isFull ? !full() : full();
    });
  });
})();
`;
