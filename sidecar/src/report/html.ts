/**
 * index.html: the page a human opens first. Self-contained (inline CSS, no
 * network); the flamegraphs are embedded with <object> so their scripts run.
 */
import { basename, escapeXml as esc, humanBytes, percent } from './format.js';
import type { Frame, OomReason, ProfileData, ReportJson, Trigger } from './model.js';

export const FILES = {
  html: 'index.html',
  svg: 'peak-memory.svg',
  reversedSvg: 'peak-memory-reversed.svg',
  folded: 'peak-memory.folded',
  json: 'report.json',
} as const;

const TOP_ROWS = 30;

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

function where(f: Frame | undefined): string {
  if (!f) return '<em>no Python frame</em>';
  return `<code>${esc(f.function)}</code> <span title="${esc(f.file)}">${esc(basename(f.file))}:${f.line}</span>`;
}

function framesList(frames: Frame[]): string {
  if (frames.length === 0) return '<p><em>No Python frame was known.</em></p>';
  const items = frames.map(
    (f) => `<li>${where(f)}${f.code ? `<br><code class="src">${esc(f.code)}</code>` : ''}</li>`,
  );
  return `<ol class="frames">${items.join('')}</ol>`;
}

/** Says what the rendering limits cut (report.json `truncation`), if anything. */
function truncationNote(report: ReportJson): string {
  const t = report.truncation;
  if (!t) return '';
  const parts: string[] = [];
  if (t.foldedStacks > 0) {
    parts.push(`${t.foldedStacks} stacks deeper than ${t.maxDepth} frames were folded (${t.foldedFrames} frames in the middle of them left out)`);
  }
  if (t.otherStacks > 0) {
    parts.push(`past ${t.maxStacks} stacks, the ${t.otherStacks} smallest (${humanBytes(t.otherBytes)} in all) were merged into one "smaller stacks merged" stack`);
  }
  return `<p class="why" id="truncation">Limits: ${esc(parts.join('; '))}.</p>`;
}

function row(label: string, value: string): string {
  return `<tr><th>${esc(label)}</th><td>${value}</td></tr>`;
}

function embed(file: string, title: string, height: number): string {
  return (
    `<h2>${esc(title)}</h2>` +
    `<p><a href="${file}" target="_blank" rel="noopener">open in new tab</a></p>` +
    `<object type="image/svg+xml" data="${file}" style="width:100%;max-width:1200px;height:${height}px">` +
    `<a href="${file}">${esc(title)}</a></object>`
  );
}

export function renderHtml(data: ProfileData, report: ReportJson, svgHeights: { normal: number; reversed: number }): string {
  const p = data.process;
  const m = data.memory;
  const peak = report.peakBytes;
  const title = `highwater: peak memory ${mib(peak)} \u2014 ${p.argv.join(' ') || `pid ${p.pid}`}`;
  const when = data.timeMs > 0 ? new Date(data.timeMs).toISOString() : 'unknown';

  const stackRows = report.stacks.slice(0, TOP_ROWS).map((s, i) => {
    const leaf = s.frames[s.frames.length - 1];
    return (
      `<tr><td class="n">${i + 1}</td><td class="n">${esc(humanBytes(s.bytes))}</td>` +
      `<td class="n">${percent(s.bytes, peak)}</td><td>${where(leaf)}</td>` +
      `<td><code class="src">${esc(leaf?.code ?? '')}</code></td></tr>`
    );
  });
  const more = report.stacks.length > TOP_ROWS ? `<p>${report.stacks.length - TOP_ROWS} more stacks in report.json.</p>` : '';

  const oom = report.oomAllocation
    ? `<h2>The allocation that tripped it</h2><p>${esc(humanBytes(report.oomAllocation.bytes))} requested at:</p>${framesList(report.oomAllocation.frames)}`
    : '';
  const fa = report.failedAllocation;
  const failed = fa
    ? `<h2 id="failed">Refused allocations</h2><p>${fa.count.toLocaleString('en-US')} allocation${fa.count === 1 ? ' was' : 's were'} refused ` +
      `(the program got a MemoryError). The last one, ${esc(humanBytes(fa.bytes))}, was requested at:</p>${framesList(fa.frames)}`
    : '';

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,"DejaVu Sans",sans-serif;margin:1.5em;color:#111;max-width:1240px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}
table{border-collapse:collapse}th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}code.src{font-family:"DejaVu Sans Mono",Menlo,monospace;white-space:pre-wrap}
.why{font-size:1.1em;padding:.6em .8em;background:#fff4e5;border-left:4px solid #e66100}
.peak{font-size:1.3em;font-weight:bold}
</style></head><body>
<h1>${esc(title)}</h1>
<p class="why" id="trigger">${esc(explainTrigger(report.trigger, report.oomReason, m.floorBytes ?? 0))}</p>
<p class="peak" id="peak">Peak memory: ${mib(peak)} (${peak.toLocaleString('en-US')} bytes)</p>
<table>
${row('Command', `<code>${esc(p.argv.join(' '))}</code>`)}
${row('PID', String(p.pid))}
${row('Python', esc(p.python || 'unknown'))}
${row('Working directory', esc(p.cwd || 'unknown'))}
${row('Recorded at', esc(when))}
${report.sampling ? row('Stacks', `sampled: about one per ${esc(humanBytes(report.sampling.rateBytes))} allocated; the bytes per line are estimates, the peak is exact`) : ''}
</table>
<h2>Memory readings</h2>
<table>
${row('Source', esc(m.source))}
${row('Limit', m.limitBytes > 0 ? esc(humanBytes(m.limitBytes)) : 'no limit / unknown')}
${row('Working set', esc(humanBytes(m.workingSetBytes)))}
${row('Available', esc(humanBytes(m.availableBytes)))}
${row('Swap used', esc(humanBytes(m.swapBytes)))}
${m.floorBytes ? row('Floor', esc(humanBytes(m.floorBytes))) : ''}
</table>
${oom}
${failed}
${embed(FILES.svg, 'Peak memory by call stack (callers at the top)', svgHeights.normal)}
${embed(FILES.reversedSvg, 'Reversed: allocation sites at the top', svgHeights.reversed)}
<h2>Largest stacks at the peak</h2>
<table id="top-stacks"><thead><tr><th>#</th><th>bytes</th><th>% of peak</th><th>allocated at</th><th>source</th></tr></thead>
<tbody>${stackRows.join('\n')}</tbody></table>
${more}
${truncationNote(report)}
<h2>Data</h2>
<ul><li><a href="${FILES.folded}">${FILES.folded}</a> (folded stacks: <code>file:line (function);&#8230; bytes</code>, for other flamegraph tools)</li>
<li><a href="${FILES.json}">${FILES.json}</a> (machine-readable report)</li></ul>
</body></html>
`;
}
