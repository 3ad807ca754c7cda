/**
 * ProfileData → report directory (docs/report.md "Outputs"). The page and
 * the SVGs are built in memory first; report.json and the folded stacks are
 * written as they are made (chunks.ts), never whole in memory. A failure to
 * write leaves (at worst) a partly filled directory, without index.html.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HighwaterError } from '../errors.js';
import { readDump } from './dump.js';
import { FILES, renderPage } from './html.js';
import type { ProfileData, ReportJson, Stack, Truncation } from './model.js';
import type { FileContent } from './chunks.js';
import { replaceFile, writeExclusive, openDirectory } from './safe-file.js';
import { boundStacks, emptyTruncation, foldDeep, foldedFramesMarker, foldedLines, isTruncated, mergeStacks, sortStacks, trimToCoverage } from './stacks.js';

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

/**
 * The profile within the rendering limits (stacks.ts MAX_DEPTH, MAX_STACKS):
 * its stacks merged, bounded and sorted, and what was cut, counting what the
 * parser cut already.
 */
export function boundProfile(data: ProfileData): { sorted: Stack[]; truncation: Truncation | null } {
  const t = data.truncation ? { ...data.truncation } : emptyTruncation();
  const sorted = sortStacks(boundStacks(mergeStacks(data.stacks), t));
  return { sorted, truncation: isTruncated(t) ? t : null };
}

/** `bounded`: the profile's stacks already merged, bounded and sorted, when the caller has them. */
export function buildReportJson(data: ProfileData, bounded = boundProfile(data)): ReportJson {
  const m = data.memory;
  const sorted = bounded.sorted;
  return {
    version: 1,
    trigger: data.trigger,
    oomReason: data.oomReason,
    oomAllocation: data.oomAllocation && {
      bytes: data.oomAllocation.bytes,
      frames: foldDeep(data.oomAllocation.frames, foldedFramesMarker, emptyTruncation()),
    },
    peakBytes: data.peakBytes,
    // Added field (the contract allows additions): when the dump was taken, ms since the epoch.
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
    sampling: data.sampling ?? null,
    stacks: trimToCoverage(sorted, data.peakBytes, 0.99),
    truncation: bounded.truncation,
    ...(data.failedAllocation ? { failedAllocation: data.failedAllocation } : {}),
    // Added fields, container-wide reports only (report/container.ts).
    ...(data.container ? { container: data.container } : {}),
    ...(data.processes ? { processes: data.processes } : {}),
    ...oomFields(data),
  };
}

/** Added fields: what was live when it ran out (OOM only), memory over time. */
function oomFields(data: ProfileData): Pick<ReportJson, 'oomStacks' | 'timeline'> {
  const out: Pick<ReportJson, 'oomStacks' | 'timeline'> = {};
  // A container-wide post-mortem has every process's memory at its death: the same view.
  if ((data.trigger === 'oom' || (data.trigger === 'killed' && data.container)) && data.currentStacks) {
    const live = sortStacks(mergeStacks(data.currentStacks));
    out.oomStacks = trimToCoverage(
      live,
      live.reduce((a, s) => a + s.bytes, 0),
      0.99,
    );
  }
  if (data.timeline) out.timeline = data.timeline;
  return out;
}

/**
 * report.json text: indented, except one line per stack. Fully indented, a
 * 40 000-stack report is ~2.5× larger and slower to write, and harder to grep.
 */
export function reportJsonText(report: ReportJson): string {
  return [...reportJsonPieces(report)].join('');
}

/** `,\n  "name": [` then one indented JSON line per item, then `]`, as pieces. */
function* jsonList(open: string, items: readonly unknown[]): Generator<string> {
  yield open;
  for (let i = 0; i < items.length; i++) yield `${i === 0 ? '\n' : ',\n'}    ${JSON.stringify(items[i])}`;
  yield items.length ? '\n  ]' : ']';
}

/**
 * reportJsonText in pieces (a line per stack), for writing them as they come
 * (chunks.ts): the text of a large report is never one string.
 */
export function* reportJsonPieces(report: ReportJson): Generator<string> {
  const { stacks, oomStacks, timeline, ...head } = report;
  yield JSON.stringify(head, null, 2).slice(0, -2); // drop the closing "\n}"
  yield* jsonList(',\n  "stacks": [', stacks);
  if (oomStacks) yield* jsonList(',\n  "oomStacks": [', oomStacks);
  if (timeline) {
    // One sample per line, like stacks.
    const { samples, ...rest } = timeline;
    yield* jsonList(`,\n  "timeline": ${JSON.stringify(rest).slice(0, -1)}, "samples": [`, samples);
    yield '}';
  }
  yield '\n}\n';
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
      // The umask must not widen or narrow it; fchmod on the directory opened
      // without following a link, not chmod on a name that could be swapped.
      const fh = await openDirectory(dir);
      try {
        await fh.chmod(dirMode);
      } finally {
        await fh.close();
      }
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && n < 1000) continue;
      throw unwritable(dir, e);
    }
  }
}

/**
 * A new report directory `<outDir>/<timestamp>/` (mode from `fileMode` as in
 * renderReport), for a report written in parts: the container-wide report
 * puts each process's own report under it before its own index.html.
 */
export async function makeReportDir(outDir: string, opts: RenderOptions = {}): Promise<string> {
  const fileMode = opts.fileMode ?? 0o600;
  return makeDir(outDir, true, fileMode | ((fileMode & 0o444) >> 2), opts.now ?? new Date());
}

/**
 * In a directory made for this report, files are created exclusively. In an
 * existing directory (`--no-timestamp`), a file already there (or a symlink
 * someone planted) is replaced by rename, never written through or chmod'ed.
 */
async function writeOne(path: string, content: FileContent, mode: number, freshDir: boolean): Promise<void> {
  try {
    if (freshDir) await writeExclusive(path, content, mode);
    else await replaceFile(path, content, mode);
  } catch (e) {
    throw unwritable(path, e);
  }
}

export async function renderReport(data: ProfileData, outDir: string, opts: RenderOptions = {}): Promise<{ dir: string; report: ReportJson }> {
  const fileMode = opts.fileMode ?? 0o600;
  const dirMode = fileMode | ((fileMode & 0o444) >> 2);
  const bounded = boundProfile(data);
  const all = bounded.sorted;
  const report = buildReportJson(data, bounded);
  const { html, svg, reversedSvg } = renderPage(data, report, all);

  const stamped = opts.timestampedSubdir ?? true;
  try {
    const dir = await makeDir(outDir, stamped, dirMode, opts.now ?? new Date());
    // report.json and the folded stacks are written as they are made (chunks.ts).
    const files: Array<[string, FileContent]> = [
      [FILES.json, reportJsonPieces(report)],
      [FILES.folded, foldedLines(all)],
      [FILES.svg, svg],
      [FILES.reversedSvg, reversedSvg],
      [FILES.html, html], // last: its presence means the rest is there
    ];
    for (const [name, content] of files) await writeOne(join(dir, name), content, fileMode, stamped);
    return { dir, report };
  } catch (e) {
    if (typeof e === 'object' && e !== null) unwritten.set(e, report);
    throw e;
  }
}

/** Reports built in full whose files could not be written, by the error that stopped them. */
const unwritten = new WeakMap<object, ReportJson>();

/**
 * The report `renderReport` had built when writing it failed with `err`
 * (a full or read-only report volume): what it found is still known, and can
 * be said elsewhere (a Kubernetes Event). Undefined for any other failure.
 */
export function reportNotWritten(err: unknown): ReportJson | undefined {
  return typeof err === 'object' && err !== null ? unwritten.get(err) : undefined;
}

/** Raw dump file → report directory. */
export async function renderDumpFile(dumpPath: string, outDir: string, opts: RenderOptions = {}): Promise<{ dir: string; report: ReportJson }> {
  return renderReport(await readDump(dumpPath), outDir, opts);
}
