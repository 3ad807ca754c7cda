/**
 * ProfileData → report directory (DESIGN.md "Report directory"). All the
 * content is built in memory first, so a failure to write leaves no half
 * rendered strings behind, only (at worst) a partly filled directory.
 */
import { mkdir, open, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { HighwaterError } from '../errors.js';
import { readDump } from './dump.js';
import { FILES, renderPage } from './html.js';
import type { ProfileData, ReportJson } from './model.js';
import { mergeStacks, sortStacks, toFolded, trimToCoverage } from './stacks.js';

export interface RenderOptions {
  /** Write into a new `<outDir>/<timestamp>/` rather than into `outDir` itself. @default true */
  timestampedSubdir?: boolean;
  /** Mode of the files; directories get it plus x where r is set. @default 0o600 (reports hold source lines) */
  fileMode?: number;
  /** Clock for the sub-directory name (tests). @default new Date() */
  now?: Date;
}

function unwritable(path: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string') return err;
  return new HighwaterError('HW_ERR_OUTPUT_UNWRITABLE', `cannot write the report at ${path}: ${code}`, {
    cause: err,
  });
}

/** `2026-11-25T02-10-33-123Z`: ISO time without ':' and '.', safe on every filesystem. */
export function timestampName(now: Date): string {
  return now.toISOString().replace(/[:.]/g, '-');
}

/** `sorted`: the profile's stacks already merged and sorted, when the caller has them. */
export function buildReportJson(data: ProfileData, sorted = sortStacks(mergeStacks(data.stacks))): ReportJson {
  const m = data.memory;
  return {
    version: 1,
    trigger: data.trigger,
    oomReason: data.oomReason,
    oomAllocation: data.oomAllocation,
    peakBytes: data.peakBytes,
    // Added field (DESIGN.md allows additions): when the dump was taken, ms since the epoch.
    timeMs: data.timeMs,
    process: { pid: data.process.pid, argv: data.process.argv, python: data.process.python },
    memory: {
      source: m.source,
      limitBytes: m.limitBytes,
      workingSetBytes: m.workingSetBytes,
      availableBytes: m.availableBytes,
      swapBytes: m.swapBytes,
      ...(m.floorBytes !== undefined ? { floorBytes: m.floorBytes } : {}),
    },
    stacks: trimToCoverage(sorted, data.peakBytes, 0.99),
    ...oomFields(data),
  };
}

/** Added fields: what was live when it ran out (OOM only), memory over time. */
function oomFields(data: ProfileData): Pick<ReportJson, 'oomStacks' | 'timeline'> {
  const out: Pick<ReportJson, 'oomStacks' | 'timeline'> = {};
  if (data.trigger === 'oom' && data.currentStacks) {
    const live = sortStacks(mergeStacks(data.currentStacks));
    out.oomStacks = trimToCoverage(live, live.reduce((a, s) => a + s.bytes, 0), 0.99);
  }
  if (data.timeline) out.timeline = data.timeline;
  return out;
}

/**
 * report.json text: indented, except one line per stack. Fully indented, a
 * 40 000-stack report is ~2.5× larger and slower to write, and harder to grep.
 */
export function reportJsonText(report: ReportJson): string {
  const { stacks, oomStacks, timeline, ...head } = report;
  const top = JSON.stringify(head, null, 2).slice(0, -2); // drop the closing "\n}"
  const list = (name: string, items: readonly unknown[]) => {
    const lines = items.map((s) => `    ${JSON.stringify(s)}`);
    return `,\n  "${name}": [${lines.length ? `\n${lines.join(',\n')}\n  ` : ''}]`;
  };
  let text = top + list('stacks', stacks);
  if (oomStacks) text += list('oomStacks', oomStacks);
  if (timeline) {
    // One sample per line, like stacks.
    const { samples, ...rest } = timeline;
    const headText = JSON.stringify(rest).slice(0, -1);
    text += `,\n  "timeline": ${headText}, "samples": [${samples.length ? `\n${samples.map((s) => `    ${JSON.stringify(s)}`).join(',\n')}\n  ` : ''}]}`;
  }
  return `${text}\n}\n`;
}

async function makeDir(outDir: string, stamped: boolean, dirMode: number, now: Date): Promise<string> {
  try {
    await mkdir(outDir, { recursive: true, mode: dirMode });
  } catch (e) {
    throw unwritable(outDir, e);
  }
  if (!stamped) return outDir;
  const base = join(outDir, timestampName(now));
  for (let n = 0; ; n++) {
    const dir = n === 0 ? base : `${base}-${n}`;
    try {
      // Non-recursive mkdir fails with EEXIST atomically: two renders in the
      // same millisecond (two processes OOMing together) get distinct dirs.
      await mkdir(dir, { mode: dirMode });
      await chmod(dir, dirMode); // the umask must not widen or narrow it
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && n < 1000) continue;
      throw unwritable(dir, e);
    }
  }
}

async function writeOne(path: string, content: string, mode: number): Promise<void> {
  try {
    const fh = await open(path, 'w', mode);
    try {
      await fh.chmod(mode); // an existing file keeps its old mode otherwise
      await fh.writeFile(content, 'utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw unwritable(path, e);
  }
}

export async function renderReport(
  data: ProfileData,
  outDir: string,
  opts: RenderOptions = {},
): Promise<{ dir: string; report: ReportJson }> {
  const fileMode = opts.fileMode ?? 0o600;
  const dirMode = fileMode | ((fileMode & 0o444) >> 2);
  const all = sortStacks(mergeStacks(data.stacks));
  const report = buildReportJson(data, all);
  const { html, svg, reversedSvg } = renderPage(data, report, all);

  const dir = await makeDir(outDir, opts.timestampedSubdir ?? true, dirMode, opts.now ?? new Date());
  const files: Array<[string, string]> = [
    [FILES.json, reportJsonText(report)],
    [FILES.folded, toFolded(all)],
    [FILES.svg, svg],
    [FILES.reversedSvg, reversedSvg],
    [FILES.html, html], // last: its presence means the rest is there
  ];
  for (const [name, content] of files) await writeOne(join(dir, name), content, fileMode);
  return { dir, report };
}

/** Raw dump file → report directory. */
export async function renderDumpFile(
  dumpPath: string,
  outDir: string,
  opts: RenderOptions = {},
): Promise<{ dir: string; report: ReportJson }> {
  return renderReport(await readDump(dumpPath), outDir, opts);
}
