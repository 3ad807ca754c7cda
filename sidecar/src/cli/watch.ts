/**
 * `highwater watch`: the watcher of Docker single-container mode (started by
 * highwater-init with HIGHWATER_WATCH=1) and of sidecar mode (its own
 * container sharing the run-dir volume). It watches every tracked process in
 * the run dir (watcher/rundir-watcher.ts), renders reports, serves metrics,
 * writes a summary to /dev/termination-log and, on SIGTERM/SIGINT, renders
 * what is left and exits 0 (the contract in docs/docker.md).
 */
import { accessSync, constants as fsConstants, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { HighwaterError } from '../errors.js';
import { moduleLogger, type Logger } from '../log.js';
import { Metrics, MetricsServer } from '../metrics/index.js';
import { humanBytes } from '../report/format.js';
import type { ReportJson } from '../report/model.js';
import { RunDirWatcher, type RunDirEvent } from '../watcher/rundir-watcher.js';
import { reportSummaryLines } from '../report/toplines.js';
import { topLine } from '../watcher/summary.js';
import type { WatchFlags } from './args.js';
import { takeEarlySignals } from './early-signals.js';
import { ensureWritableDir } from './output.js';

/** Settings of `highwater watch` beyond the shared Config (docs/configuration.md). */
export interface WatchConfig {
  /** The run dir shared with the shims. Flag `--run-dir`, else env `HIGHWATER_RUN_DIR`. Required. */
  runDir: string;
  /**
   * Port of the metrics server (`/metrics`, `/healthz`); 0 = any free port.
   * Flag `--metrics-port`, env `HIGHWATER_METRICS_PORT`.
   * @default undefined (no server)
   */
  metricsPort: number | undefined;
  /**
   * Say so once when no tracked process appeared in the run dir within this
   * many milliseconds; 0 = never. Flag `--warn-after SECONDS`, env `HIGHWATER_WARN_AFTER`.
   * @default 5000
   */
  warnAfterMs: number;
  /** One pass (render what is there, post-mortems of ended processes), then exit. Flag `--once`. @default false */
  once: boolean;
  /**
   * Where a short summary of each report goes when the file exists and is
   * writable (Kubernetes convention). Env `HIGHWATER_TERMINATION_LOG`.
   * @default '/dev/termination-log'
   */
  terminationLog: string;
}

function configError(name: string, value: string, expected: string): HighwaterError {
  return new HighwaterError('HW_ERR_CONFIG', `invalid value for ${name}: ${JSON.stringify(value)}; expected ${expected}`);
}

/** Flags, then `HIGHWATER_*` variables, then defaults. Raises HW_ERR_USAGE / HW_ERR_CONFIG. */
export function loadWatchConfig(runDirFlag: string | undefined, flags: WatchFlags, env: NodeJS.ProcessEnv = process.env): WatchConfig {
  const e = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const runDir = runDirFlag ?? e('HIGHWATER_RUN_DIR');
  if (runDir === undefined) throw new HighwaterError('HW_ERR_USAGE', 'highwater watch: --run-dir DIR is required (or HIGHWATER_RUN_DIR)');

  let metricsPort: number | undefined;
  const [portText, portName] = flags.metricsPort !== undefined ? [flags.metricsPort, '--metrics-port'] : [e('HIGHWATER_METRICS_PORT'), 'HIGHWATER_METRICS_PORT'];
  if (portText !== undefined) {
    metricsPort = Number(portText);
    if (!/^\d+$/.test(portText.trim()) || metricsPort > 65535) throw configError(portName, portText, 'a port number from 0 to 65535 (0 = any free port)');
  }

  let warnAfterMs = 5000;
  const [warnText, warnName] = flags.warnAfter !== undefined ? [flags.warnAfter, '--warn-after'] : [e('HIGHWATER_WARN_AFTER'), 'HIGHWATER_WARN_AFTER'];
  if (warnText !== undefined) {
    const s = Number(warnText);
    if (!/^\d+(\.\d+)?$/.test(warnText.trim()) || s > 86400) throw configError(warnName, warnText, 'seconds from 0 to 86400 (0 = never)');
    warnAfterMs = Math.round(s * 1000);
  }
  return { runDir, metricsPort, warnAfterMs, once: flags.once ?? false, terminationLog: e('HIGHWATER_TERMINATION_LOG') ?? '/dev/termination-log' };
}

export interface WatchOptions {
  config: Config;
  watch: WatchConfig;
  logger: Logger;
  /** Human messages (`highwater: ...` lines on stderr). */
  say: (line: string) => void;
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

/** The largest stack's own-code line, as `file:line code`. */
export function topLineOf(report: ReportJson): string {
  return topLine(report) || (report.stacks.length ? '(no Python frame)' : '(nothing tracked)');
}

/** The termination-log text: trigger, peak, top line, where the report is. */
export function terminationSummary(report: ReportJson, dir: string): string {
  const why = report.trigger === 'oom' && report.oomReason ? `oom (${report.oomReason})` : report.trigger;
  return `highwater: ${why}: peak ${humanBytes(report.peakBytes)} at ${topLineOf(report)}\nreport: ${join(dir, 'index.html')}\n`;
}

/** Writes the summary when the file exists and is writable; an OOM summary is not replaced by a later non-OOM one. */
function writeTerminationLog(path: string, report: ReportJson, dir: string, state: { oomWritten: boolean }, log: Logger): void {
  if (state.oomWritten && report.trigger !== 'oom') return;
  try {
    if (!existsSync(path)) return;
    accessSync(path, fsConstants.W_OK);
    writeFileSync(path, terminationSummary(report, dir).slice(0, 4096));
    if (report.trigger === 'oom') state.oomWritten = true;
  } catch (e) {
    log.debug({ path, err: (e as Error).message }, 'cannot write the termination log');
  }
}

function errnoOf(e: unknown): string {
  const code = (e as { cause?: { code?: unknown }; code?: unknown } | null)?.cause?.code ?? (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(e);
}

export async function watchCommand(opts: WatchOptions): Promise<number> {
  const { config, watch, say } = opts;
  const log = moduleLogger(opts.logger, 'watch');
  const runDir = resolve(watch.runDir);
  const outputDir = resolve(config.outputDir);

  if (!existsSync(runDir)) {
    try {
      mkdirSync(runDir, { mode: 0o700 });
      log.info({ runDir }, 'created the run dir');
    } catch (e) {
      say(`cannot create the run dir ${runDir}: ${errnoOf(e)}; watching for it anyway`);
    }
  }
  // Not fatal: reports that cannot be written are counted and their raw data kept.
  try {
    ensureWritableDir(outputDir);
  } catch (e) {
    say(`${(e as Error).message}; raw dumps will be kept`);
  }

  const watcher = new RunDirWatcher({
    runDir,
    outputDir,
    config,
    expectProcessWithinMs: watch.warnAfterMs,
    dumpOnStop: !watch.once,
    readOptions: { logger: moduleLogger(opts.logger, 'readings') },
  });
  const metrics = new Metrics({ processes: () => watcher.samples() });
  const oomCounted = new Set<number>();
  const termState = { oomWritten: false };

  watcher.on('event', (e: RunDirEvent) => {
    switch (e.type) {
      case 'process-found':
        oomCounted.delete(e.pid);
        log.info({ argv: e.argv.join(' '), readings: e.local ? 'cgroup' : 'state file' }, `tracking process ${e.pid}`);
        break;
      case 'process-gone':
        log.info(`process ${e.pid} ended`);
        break;
      case 'no-process':
        say(
          `no tracked process in ${e.runDir} after ${seconds(e.afterMs)}: is the run dir shared with the application container (same volume at the same HIGHWATER_RUN_DIR)?`,
        );
        break;
      case 'reading-failed':
        log.warn({ err: e.message }, `cannot take memory readings of process ${e.pid}`);
        break;
      case 'floor-set':
        log.debug({ floorBytes: e.floorBytes }, `floor set for process ${e.pid}`);
        break;
      case 'control-failed':
        log.debug({ command: e.command, err: e.message }, `control command to process ${e.pid} failed`);
        break;
      case 'oom':
        if (!oomCounted.has(e.pid)) metrics.oom(e.reason);
        oomCounted.add(e.pid);
        log.warn({ reason: e.reason }, `process ${e.pid} out of memory: ${e.detail}`);
        break;
      case 'report':
        metrics.reportWritten(e.report.trigger);
        if (e.report.trigger === 'oom' && e.pid !== undefined && !oomCounted.has(e.pid)) {
          metrics.oom(e.report.oomReason ?? 'unknown');
          oomCounted.add(e.pid);
        }
        say(`report written to ${join(e.dir, 'index.html')} (${e.report.trigger}, peak ${humanBytes(e.report.peakBytes)}, ${topLineOf(e.report)})`);
        for (const line of reportSummaryLines(e.report)) say(line);
        writeTerminationLog(watch.terminationLog, e.report, e.dir, termState, log);
        break;
      case 'report-failed':
        metrics.reportFailed(e.reason);
        log.error({ from: e.from, reason: e.reason }, e.message);
        say(`could not render ${e.from}: ${e.message}`);
        say(`raw data kept at ${e.kept}`);
        break;
    }
  });

  let server: MetricsServer | undefined;
  if (watch.metricsPort !== undefined) {
    server = new MetricsServer(metrics, { port: watch.metricsPort });
    try {
      const addr = await server.start();
      say(`metrics at http://${addr.address === '0.0.0.0' ? 'localhost' : addr.address}:${addr.port}/metrics`);
    } catch (e) {
      say(`cannot serve metrics on port ${watch.metricsPort}: ${errnoOf(e)}; going on without`);
    }
  }

  log.info({ runDir, outputDir }, 'watching');
  if (watch.once) {
    takeEarlySignals();
    await watcher.runOnce();
    await server?.stop();
    return watcher.failureCount > 0 ? 1 : 0;
  }

  await new Promise<void>((resolveStop) => {
    let signalled = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signalled++;
      if (signalled > 1) {
        log.warn({ signal: sig }, 'second signal: exiting without waiting for the reports');
        resolveStop();
        return;
      }
      log.info({ signal: sig }, 'stopping: rendering what is left');
      void watcher.stop().then(resolveStop, resolveStop);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    watcher.start();
    for (const sig of takeEarlySignals()) onSignal(sig); // the job may have ended while we were loading
  });
  await server?.stop();
  return 0;
}

