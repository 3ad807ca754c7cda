/**
 * `highwater collect docker [--follow] [--output DIR]`: finds the containers
 * started with highwater (label io.highwater.enabled=true), copies their report
 * directories out through the engine's archive API (works on stopped
 * containers and on volumes mounted in them) and prints one table row per
 * new report. With `follow` it keeps reading the engine's event stream and
 * collects again whenever such a container dies (exit 53 or any other) or the
 * kernel reports an `oom` in it.
 *
 * Labels read on the containers:
 *   io.highwater.enabled=true    the container is collected
 *   io.highwater.reports=PATH    where its reports are (default /reports)
 *   io.highwater.sidecar=NAME    (sidecar mode) the container whose reports volume
 *                                holds this one's reports; copied from as well
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from '../log.js';
import type { ReportJson } from '../report/model.js';
import { topLine } from '../watcher/summary.js';
import { connectEngine, type Engine, type EngineContainer } from './engine.js';
import { readTar, type TarEntry } from './tar.js';

export { topLine };

export const ENABLED_LABEL = 'io.highwater.enabled=true';
export const REPORTS_LABEL = 'io.highwater.reports';
export const SIDECAR_LABEL = 'io.highwater.sidecar';

export interface CollectOptions {
  /** Keep following the event stream until `signal` aborts. @default false */
  follow?: boolean;
  /** Where copied reports go: `<output>/<container>/<report dir>/`. @default "highwater-reports" */
  output?: string;
  /** Reports path inside containers without an io.highwater.reports label. @default "/reports" */
  reportsPath?: string;
  /** Label selecting the containers. @default "io.highwater.enabled=true" */
  label?: string;
  /** The engine; tests pass a fake. @default connectEngine() */
  engine?: Engine;
  /** Stops `follow`. */
  signal?: AbortSignal;
  /** Receives each table line (header first) as soon as it is known. @default nothing */
  print?: (line: string) => void;
}

export interface CollectedReport {
  container: string;
  containerId: string;
  /** The container's exit code; null while it runs. */
  exitCode: number | null;
  oomKilled: boolean;
  /** The container the report was copied from (the sidecar in sidecar mode). */
  source: string;
  trigger: string | null;
  peakBytes: number | null;
  /** `file:line code` of the largest stack's innermost frame; '' if unknown. */
  topLine: string;
  /** The copied report directory on this machine. */
  reportPath: string;
}

export function formatBytes(n: number | null): string {
  if (n === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

const COLUMNS = ['CONTAINER', 'EXIT', 'PEAK', 'TOP LINE', 'REPORT'] as const;
const WIDTHS = [24, 5, 10, 48] as const;

function pad(s: string, w: number): string {
  return s.length >= w ? s.slice(0, w - 1) + '…' : s.padEnd(w);
}

export function tableHeader(): string {
  return COLUMNS.map((c, i) => (i < WIDTHS.length ? pad(c, WIDTHS[i]!) : c)).join(' ');
}

export function tableRow(r: CollectedReport): string {
  const cells = [r.container, r.exitCode === null ? 'run' : String(r.exitCode), formatBytes(r.peakBytes), r.topLine || '-', r.reportPath];
  return cells.map((c, i) => (i < WIDTHS.length ? pad(c, WIDTHS[i]!) : c)).join(' ');
}

/**
 * Groups archive entries by report directory. The archive of `/reports` has
 * `reports/<dir>/...`; a report directory is one holding a report.json.
 */
export function reportDirs(entries: TarEntry[]): Map<string, TarEntry[]> {
  const byDir = new Map<string, TarEntry[]>();
  for (const e of entries) {
    const parts = e.path.split('/');
    if (parts.length < 3) continue; // the root itself and files directly in it
    const dir = parts[1]!;
    const list = byDir.get(dir) ?? [];
    list.push({ ...e, path: parts.slice(2).join('/') });
    byDir.set(dir, list);
  }
  for (const [dir, list] of byDir) if (!list.some((e) => e.path === 'report.json' && e.type === 'file')) byDir.delete(dir);
  return byDir;
}

function writeEntries(dest: string, entries: TarEntry[]): void {
  mkdirSync(dest, { recursive: true });
  for (const e of entries) {
    const p = join(dest, e.path);
    if (e.type === 'directory') mkdirSync(p, { recursive: true });
    else {
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, e.data, { mode: (e.mode & 0o777) | 0o600 });
    }
  }
}

function parseReport(entries: TarEntry[]): Partial<ReportJson> {
  const file = entries.find((e) => e.path === 'report.json');
  try {
    return file ? (JSON.parse(file.data.toString('utf8')) as Partial<ReportJson>) : {};
  } catch {
    return {};
  }
}

export async function collectDocker(opts: CollectOptions, log: Logger): Promise<CollectedReport[]> {
  const engine = opts.engine ?? connectEngine();
  const label = opts.label ?? ENABLED_LABEL;
  const output = resolve(opts.output ?? 'highwater-reports');
  const defaultPath = opts.reportsPath ?? '/reports';
  const print = opts.print ?? (() => {});
  const collected: CollectedReport[] = [];
  const copied = new Set<string>();

  const copyFrom = async (app: EngineContainer, source: EngineContainer): Promise<void> => {
    const path = source.labels[REPORTS_LABEL] ?? defaultPath;
    const archive = await engine.getArchive(source.id, path);
    if (!archive) {
      log.debug({ container: source.name, path }, 'no reports path in container');
      return;
    }
    let dirs: Map<string, TarEntry[]>;
    try {
      dirs = reportDirs(readTar(archive));
    } catch (e) {
      log.warn({ container: source.name, path, err: (e as Error).message }, 'unreadable archive');
      return;
    }
    for (const [dir, entries] of [...dirs].sort(([a], [b]) => a.localeCompare(b))) {
      const dest = join(output, source.name, dir);
      if (copied.has(dest) || existsSync(dest)) continue;
      copied.add(dest);
      writeEntries(dest, entries);
      const report = parseReport(entries);
      const row: CollectedReport = {
        container: app.name,
        containerId: app.id,
        exitCode: app.exitCode,
        oomKilled: app.oomKilled,
        source: source.name,
        trigger: report.trigger ?? null,
        peakBytes: typeof report.peakBytes === 'number' ? report.peakBytes : null,
        topLine: topLine(report),
        reportPath: dest,
      };
      log.info({ container: app.name, report: dest }, 'report collected');
      collected.push(row);
      print(tableRow(row));
    }
  };

  const collect = async (c: EngineContainer): Promise<void> => {
    await copyFrom(c, c);
    const sidecar = c.labels[SIDECAR_LABEL];
    if (sidecar) {
      try {
        await copyFrom(c, await engine.inspect(sidecar));
      } catch (e) {
        log.warn({ container: c.name, sidecar, err: (e as Error).message }, 'sidecar not found');
      }
    }
  };

  print(tableHeader());
  for (const c of await engine.listContainers(label)) await collect(c);

  if (opts.follow) {
    const signal = opts.signal ?? new AbortController().signal;
    log.info({ label }, 'following engine events');
    for await (const ev of engine.events(label, signal)) {
      if (ev.action === 'oom') {
        log.warn({ container: ev.name }, 'the kernel OOM killer fired in the container');
        continue;
      }
      log.info({ container: ev.name, exitCode: ev.exitCode }, 'container died');
      let c: EngineContainer;
      try {
        c = await engine.inspect(ev.id);
      } catch {
        log.warn({ container: ev.name }, 'container removed before its reports could be copied (do not use --rm)');
        continue;
      }
      await collect(c);
      if (signal.aborted) break;
    }
  }
  return collected;
}
