/**
 * `highwater diff OLD NEW [-o FILE] [--fail-if-peak-grows PCT] [--top N]`:
 * compares two reports (directories or report.json files), prints the peak
 * change and the lines that changed most, writes a differential flamegraph
 * page. Exit 0, or 1 when --fail-if-peak-grows is given and the peak grew by
 * more than PCT percent (CI use); usage errors 2.
 */
import { lstatSync, openSync, readSync, closeSync, fstatSync, constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HighwaterError } from '../errors.js';
import { diffReports, diffText, peakGrowthPercent, renderDiffPage } from '../report/diff.js';
import type { ReportJson } from '../report/model.js';

export interface DiffArgs {
  old: string;
  new: string;
  output: string;
  failIfPeakGrowsPct?: number;
  top: number;
}

/** A report.json larger than this is not one highwater wrote (its stacks are cut to 99 % of the peak). */
const MAX_REPORT = 512 * 1024 * 1024;

function usage(message: string): HighwaterError {
  return new HighwaterError('HW_ERR_USAGE', `highwater diff: ${message}`);
}

export function parseDiffArgs(argv: string[]): DiffArgs | 'help' {
  const paths: string[] = [];
  let output = 'highwater-diff.html';
  let fail: number | undefined;
  let top = 10;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw usage(`option ${name} needs a value`);
      return argv[++i]!;
    };
    if (a === '-h' || a === '--help') return 'help';
    else if (name === '-o' || name === '--output') output = value();
    else if (name === '--fail-if-peak-grows') {
      const v = value();
      const n = Number(v.replace(/%$/, ''));
      if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw usage(`--fail-if-peak-grows takes a percentage >= 0 (got ${JSON.stringify(v)})`);
      fail = n;
    } else if (name === '--top') {
      const v = value();
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1) throw usage(`--top takes a whole number >= 1 (got ${JSON.stringify(v)})`);
      top = n;
    } else if (a.startsWith('-') && a !== '-') throw usage(`unknown option ${name}`);
    else paths.push(a);
  }
  if (paths.length !== 2) throw usage(`takes exactly two reports, OLD and NEW (got ${paths.length})`);
  if (output === '') throw usage('-o needs a non-empty value');
  return { old: paths[0]!, new: paths[1]!, output, ...(fail !== undefined ? { failIfPeakGrowsPct: fail } : {}), top };
}

function badReport(path: string, why: string): HighwaterError {
  return new HighwaterError('HW_ERR_REPORT_INVALID', `highwater diff: ${path}: ${why}`);
}

/**
 * Reads a report directory's report.json, or a report.json file. Someone
 * else's file: no symlink as the file itself, regular files only, bounded.
 */
export function readReportJson(path: string): ReportJson {
  let file = resolve(path);
  let st;
  try {
    st = lstatSync(file);
    if (st.isDirectory()) {
      file = join(file, 'report.json');
      st = lstatSync(file);
    }
  } catch (e) {
    throw badReport(file, `cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (st.isSymbolicLink()) throw badReport(file, 'is a symbolic link; give the report itself');
  if (!st.isFile()) throw badReport(file, 'is not a regular file');
  let text: string;
  try {
    const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    try {
      const size = fstatSync(fd).size;
      if (size > MAX_REPORT) throw badReport(file, `is ${size} bytes, more than a report.json can be`);
      const buf = Buffer.alloc(size);
      let got = 0;
      while (got < size) {
        const n = readSync(fd, buf, got, size - got, got);
        if (n === 0) break;
        got += n;
      }
      text = buf.toString('utf8', 0, got);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    if (e instanceof HighwaterError) throw e;
    throw badReport(file, `cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw badReport(file, 'is not JSON');
  }
  return checkReport(v, file);
}

function checkReport(v: unknown, file: string): ReportJson {
  const o = v as Partial<ReportJson> | null;
  if (typeof o !== 'object' || o === null || o.version !== 1) throw badReport(file, 'is not a highwater report.json (version 1)');
  if (typeof o.peakBytes !== 'number' || !(o.peakBytes >= 0)) throw badReport(file, '"peakBytes" must be a number >= 0');
  if (!Array.isArray(o.stacks)) throw badReport(file, '"stacks" must be an array');
  o.stacks.forEach((s, i) => {
    const ok =
      typeof s === 'object' &&
      s !== null &&
      typeof s.bytes === 'number' &&
      Number.isFinite(s.bytes) &&
      Array.isArray(s.frames) &&
      s.frames.every(
        (f) =>
          typeof f === 'object' &&
          f !== null &&
          typeof f.file === 'string' &&
          typeof f.function === 'string' &&
          typeof f.line === 'number' &&
          typeof (f.code ?? '') === 'string',
      );
    if (!ok) throw badReport(file, `stack ${i} is not {bytes, frames: [{file, line, function, code}]}`);
    for (const f of s.frames) f.code ??= '';
  });
  return o as ReportJson;
}

export interface DiffOutcome {
  status: number;
  lines: string[];
}

export async function diffCommand(args: DiffArgs): Promise<DiffOutcome> {
  const oldR = readReportJson(args.old);
  const newR = readReportJson(args.new);
  const d = diffReports(oldR, newR);
  const lines = diffText(d, args.top);
  const html = renderDiffPage({ oldName: args.old, newName: args.new, old: oldR, new: newR }, d, Math.max(args.top, 20));
  const out = resolve(args.output);
  try {
    const fh = await open(out, 'w', 0o600);
    try {
      await fh.writeFile(html, 'utf8');
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new HighwaterError('HW_ERR_OUTPUT_UNWRITABLE', `cannot write the diff page at ${out}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`, {
      cause: e,
    });
  }
  lines.push(`differential flamegraph: ${out}`);
  let status = 0;
  if (args.failIfPeakGrowsPct !== undefined) {
    const grew = peakGrowthPercent(d);
    if (grew > args.failIfPeakGrowsPct) {
      lines.push(
        `the peak grew by ${Number.isFinite(grew) ? `${grew.toFixed(2)}%` : 'more than any percentage (the old peak was 0)'}, more than --fail-if-peak-grows ${args.failIfPeakGrowsPct}%: exit 1`,
      );
      status = 1;
    }
  }
  return { status, lines };
}
