/**
 * The two stderr lines of a container-wide OOM (pure), the answer before the
 * report path (issue 12 "What a user sees"):
 *
 *   out of memory (low-available): 3.1 GiB of 3.5 GiB in use by 5 Python processes
 *     pid 41 (worker 3)  2.6 GiB  at  features.py:88 build_matrix  rows = np.vstack(parts)
 *
 * The process named is the one holding the most when it ran out (not
 * necessarily the one whose allocation tripped it), with its top own line.
 */
import { humanBytes } from './format.js';
import type { ProcessSummary, ReportJson } from './model.js';
import { fileLine, processShort, topLines } from './toplines.js';

function clean(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
}

/** Empty unless the report is a container-wide OOM or post-mortem. */
export function oomHeadline(report: Pick<ReportJson, 'trigger' | 'oomReason' | 'memory' | 'stacks' | 'oomStacks' | 'processes' | 'container'>): string[] {
  const ps = report.processes;
  if (!ps || ps.length === 0 || (report.trigger !== 'oom' && report.trigger !== 'killed')) return [];
  const live = ps.some((p) => p.liveBytes !== null);
  const held = (p: ProcessSummary) => (live ? (p.liveBytes ?? 0) : p.bytesAtPeak);
  const running = ps.filter((p) => held(p) > 0);
  const m = report.memory;
  const total = ps.reduce((a, p) => a + held(p), 0);
  // A post-mortem's readings are from after the deaths: what the processes held is the answer then.
  const limit = m.limitBytes > 0 ? ` of ${humanBytes(m.limitBytes)}` : '';
  const inUse = m.workingSetBytes > 0 && report.trigger === 'oom' ? `${humanBytes(m.workingSetBytes)}${limit} in use` : `${humanBytes(total)}${limit} tracked`;
  const what = report.trigger === 'oom' ? `out of memory (${report.oomReason ?? 'watcher'})` : 'killed (SIGKILL, most likely the kernel OOM killer)';
  const n = running.length || ps.length;
  const head = `${what}: ${inUse} by ${n} Python process${n === 1 ? '' : 'es'}`;
  const most = ps.reduce((a, b) => (held(b) > held(a) ? b : a));
  const stacks = (live && report.oomStacks ? report.oomStacks : report.stacks).filter((s) => s.frames[0]?.pid === most.pid);
  const top = topLines(stacks, 1)[0];
  const at = top ? `  at  ${fileLine(top.frame)} ${top.frame.function}${top.frame.code ? `  ${top.frame.code.slice(0, 100)}` : ''}` : '';
  const who = top?.process ? processShort(top.process) : `pid ${most.pid} (${most.label})`;
  return [clean(head), clean(`  ${who}  ${humanBytes(held(most))}${at}`)];
}
