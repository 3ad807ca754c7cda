/**
 * index.html's part for a container-wide report (several processes): one
 * sentence under the answer, and the table of every process with its bytes
 * at the container's peak, when it ran out, its own peak and its own report.
 */
import { escapeXml as esc, humanBytes, percent } from './format.js';
import type { ProcessSummary, ReportJson } from './model.js';

const STATES: Record<ProcessSummary['state'], string> = {
  running: 'running',
  exited: 'exited',
  killed: 'killed (SIGKILL)',
  oom: 'ran out of memory',
};

/** "5 Python processes; at the peak pid 41 (worker 3) held the most: 2.6 GiB." */
export function containerSentence(report: ReportJson): string {
  const c = report.container;
  const ps = report.processes;
  if (!c || !ps || ps.length === 0) return '';
  const live = ps.some((p) => p.liveBytes !== null);
  const bytes = (p: ProcessSummary) => (live ? (p.liveBytes ?? 0) : p.bytesAtPeak);
  const most = ps.reduce((a, b) => (bytes(b) > bytes(a) ? b : a));
  const how = c.peakSource === 'own-peaks' ? " (no moment with all of them was seen: each process's own peak, so the sum is an upper bound)" : '';
  const oom = c.oomPid !== null ? ` The out-of-memory was detected in pid ${c.oomPid}.` : '';
  return (
    ` ${c.processCount} Python processes${how}; ${live ? 'when it ran out' : 'at the peak'}, ` +
    `pid ${most.pid} (${esc(most.label)}) held the most: ${esc(humanBytes(bytes(most)))}.${oom}`
  );
}

export function processesSection(report: ReportJson): string {
  const c = report.container;
  const ps = report.processes ?? [];
  const live = ps.some((p) => p.liveBytes !== null);
  const rows = ps.map(
    (p) =>
      `<tr data-pid="${p.pid}"><td class="n">${p.pid}</td><td>${esc(p.label)}</td><td><code>${esc(p.argv.join(' '))}</code></td>` +
      `<td class="n">${esc(humanBytes(p.bytesAtPeak))}</td><td class="n">${percent(p.bytesAtPeak, report.peakBytes)}</td>` +
      (live ? `<td class="n">${p.liveBytes === null ? '' : esc(humanBytes(p.liveBytes))}</td>` : '') +
      `<td class="n">${esc(humanBytes(p.ownPeakBytes))}</td><td>${esc(STATES[p.state])}${c?.oomPid === p.pid ? ' (tripped it)' : ''}</td>` +
      `<td>${p.report ? `<a href="${esc(p.report)}">own report</a>` : ''}</td></tr>`,
  );
  const folded =
    c && c.foldedProcesses > 0
      ? `<p class="hint" id="folded-processes">${c.foldedProcesses} more process${c.foldedProcesses === 1 ? '' : 'es'} ended earlier and held nothing at the peak; ` +
        `their data was folded away (largest own peak ${esc(humanBytes(c.foldedPeakBytes))}).</p>`
      : '';
  return (
    `<section id="processes"><h2>Processes</h2><table id="process-table"><thead><tr><th class="n">pid</th><th>process</th><th>command</th>` +
    `<th class="n">at the peak</th><th class="n">% of peak</th>${live ? '<th class="n">when it ran out</th>' : ''}` +
    `<th class="n">own peak</th><th>state</th><th>report</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>` +
    `<p class="hint">The flamegraphs' root splits by process. Own peak: the process's highest memory, whenever that was; its own report shows it.</p>${folded}</section>`
  );
}
