/**
 * `highwater watch`: the watcher of Docker single-container mode (started by
 * highwater-init with HIGHWATER_WATCH=1) and of sidecar mode (its own
 * container sharing the run-dir volume). It watches every tracked process in
 * the run dir (watcher/rundir-watcher.ts), renders reports, serves metrics,
 * writes a summary to /dev/termination-log and, on SIGTERM/SIGINT, renders
 * what is left and exits 0 (the contract in docs/docker.md).
 */
import { NOT_STARTED_CODE, notStartedLine } from './not-started.js';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import type { WatchConfig } from '../config/watch.js';
import { factsOf, wantsEvent } from '../kubernetes/event.js';
import { OomEventPoster } from '../kubernetes/oom-events.js';
import { lightEventSink, openEventSink } from '../kubernetes/event-sink.js';
import { compactTime, fill, redact } from '../upload/template.js';
import { moduleLogger, type Logger } from '../log.js';
import { Metrics, MetricsServer } from '../metrics/index.js';
import { humanBytes } from '../report/format.js';
import type { ReportJson } from '../report/model.js';
import { RunDirWatcher, type RunDirEvent } from '../watcher/rundir-watcher.js';
import { oomHeadline } from '../report/oom-headline.js';
import { reportSummaryLines } from '../report/toplines.js';
import { topLine } from '../watcher/summary.js';
import { takeEarlySignals } from './early-signals.js';
import { ensureWritableDir } from './output.js';

export interface WatchOptions {
  config: Config;
  watch: WatchConfig;
  logger: Logger;
  /** Human messages (`highwater: ...` lines on stderr). */
  say: (line: string) => void;
  /** highwater's version, for `highwater_build_info`. */
  version?: string;
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

function redactedIndexUrl(template: string, values: { pod: string; namespace: string; node: string; uid: string }, dir: string, timeMs: number): string {
  return redact(fill(template, { ...values, time: compactTime(timeMs), report: basename(dir), file: 'index.html' }));
}

function errnoOf(e: unknown): string {
  const code = (e as { cause?: { code?: unknown }; code?: unknown } | null)?.cause?.code ?? (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(e);
}

/**
 * Uploads (--upload-url) and HighwaterOOM Events (--events) of each report:
 * both run in the background and never hold the watcher; `idle()` waits for
 * those started so far (each bounded in time).
 */
function reportsThatOutliveThePod(watch: WatchConfig, metrics: Metrics, root: Logger) {
  const log = moduleLogger(root, 'kubernetes');
  const pending = new Set<Promise<unknown>>();
  const event = watch.events
    ? new OomEventPoster({
        pod: watch.pod,
        client: () => openEventSink(), // in a pod node:https; elsewhere client-node, loaded at the first Event
        log,
        onPosted: () => metrics.eventPosted(),
        onFailed: (code) => metrics.eventFailed(code),
      })
    : undefined;
  const values = {
    pod: watch.pod?.name || 'unknown',
    namespace: watch.pod?.namespace || 'unknown',
    node: watch.pod?.node || 'unknown',
    uid: watch.pod?.uid || 'unknown',
  };
  /** Starts the upload of one report; returns the redacted URL of its index.html. */
  const upload = (dir: string, report: ReportJson): string | undefined => {
    const template = watch.uploadUrl;
    if (template === undefined) return undefined;
    const p = import('../upload/upload.js')
      .then(({ uploadReport }) => uploadReport(dir, report.timeMs, { template, values, budgetMs: watch.uploadTimeoutMs }))
      .then((r) => {
        for (let i = 0; i < r.uploaded.length; i++) metrics.uploadDone(true);
        for (const f of r.failed) {
          metrics.uploadDone(false);
          log.warn({ code: 'HW_ERR_UPLOAD', file: f.file, reason: f.reason, dir }, `cannot upload ${f.file}: ${f.reason}`);
        }
        if (r.uploaded.length) log.info({ code: 'HW_REPORT_UPLOADED', url: r.indexUrl, files: r.uploaded.length }, `report uploaded to ${r.indexUrl}`);
      })
      .catch((e: unknown) => log.error({ code: 'HW_ERR_UPLOAD', err: String(e), dir }, 'upload failed'))
      .finally(() => pending.delete(p));
    pending.add(p);
    return redactedIndexUrl(template, values, dir, report.timeMs);
  };
  return {
    event,
    upload,
    async idle(): Promise<void> {
      while (pending.size) await Promise.all([...pending]);
      await event?.idle();
    },
  };
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
    ...oomKillsBefore(process.env.HIGHWATER_OOM_KILLS_BEFORE),
  });
  const metrics = new Metrics({ processes: () => watcher.samples() }, { version: opts.version ?? 'unknown' });
  const oomCounted = new Set<number>();
  /** One detection per process, whichever of its events says so first. */
  const countOom = (pid: number, reason: string): void => {
    if (!oomCounted.has(pid)) metrics.oom(reason);
    oomCounted.add(pid);
  };
  const termState = { oomWritten: false };
  const outlive = reportsThatOutliveThePod(watch, metrics, opts.logger);
  const onReport = (dir: string, report: ReportJson, postMortem: boolean): void => {
    const uploadedTo = outlive.upload(dir, report);
    if (wantsEvent(report.trigger, postMortem)) {
      // An OOM caught, or the post-mortem of a process SIGKILLed before it could be (memory.oom.group).
      const local = join(dir, 'index.html');
      outlive.event?.post(factsOf(report, uploadedTo ? `${local}; upload: ${uploadedTo}` : local));
    }
  };

  watcher.on('event', (e: RunDirEvent) => {
    switch (e.type) {
      case 'process-found':
        oomCounted.delete(e.pid);
        log.info({ code: 'HW_PROCESS_FOUND', argv: e.argv.join(' '), readings: e.local ? 'cgroup' : 'state file' }, `tracking process ${e.pid}`);
        break;
      case 'process-gone':
        log.info({ code: 'HW_PROCESS_GONE' }, `process ${e.pid} ended`);
        break;
      case 'not-started':
        log.warn({ code: NOT_STARTED_CODE, argv: e.argv.join(' ') }, `process ${e.pid}: bootstrap never started`);
        say(notStartedLine(e.pid, e.argv));
        break;
      case 'no-process':
        log.debug({ code: 'HW_NO_PROCESS', runDir: e.runDir }, 'no tracked process yet');
        say(
          `no tracked process in ${e.runDir} after ${seconds(e.afterMs)}: is the run dir shared with the application container (same volume at the same HIGHWATER_RUN_DIR)?`,
        );
        break;
      case 'reading-failed':
        log.warn({ code: 'HW_ERR_READING', err: e.message }, `cannot take memory readings of process ${e.pid}`);
        break;
      case 'file-skipped':
        log.warn({ path: e.path }, `skipped ${e.path}: ${e.reason}`);
        break;
      case 'floor-set':
        log.debug({ code: 'HW_FLOOR_SET', floorBytes: e.floorBytes }, `floor set for process ${e.pid}`);
        break;
      case 'control-failed':
        log.debug({ code: 'HW_ERR_CONTROL', command: e.command, err: e.message }, `control command to process ${e.pid} failed`);
        break;
      case 'oom':
        countOom(e.pid, e.reason);
        log.warn({ code: 'HW_OOM_DETECTED', reason: e.reason }, `process ${e.pid} out of memory: ${e.detail}`);
        break;
      case 'oom-exit':
        // Counted now, not when its report is rendered: that takes seconds, and may fail (a full or read-only volume).
        countOom(e.pid, e.reason);
        log.warn({ code: 'HW_OOM_DETECTED', reason: e.reason }, `process ${e.pid} out of memory (${e.reason}): its shim is writing the dump and exiting 53`);
        break;
      case 'report':
        metrics.reportWritten(e.report.trigger);
        if (e.report.trigger === 'oom' && e.pid !== undefined) countOom(e.pid, e.report.oomReason ?? 'unknown');
        log.info({ code: 'HW_REPORT_WRITTEN', trigger: e.report.trigger, dir: e.dir, peakBytes: e.report.peakBytes }, 'report written');
        // Container-wide OOM: the process holding the most and its line first (docs/report.md "Several processes").
        for (const line of oomHeadline(e.report)) say(line);
        say(`report written to ${join(e.dir, 'index.html')} (${e.report.trigger}, peak ${humanBytes(e.report.peakBytes)}, ${topLineOf(e.report)})`);
        for (const line of reportSummaryLines(e.report)) say(line);
        writeTerminationLog(watch.terminationLog, e.report, e.dir, termState, log);
        onReport(e.dir, e.report, e.postMortem);
        break;
      case 'report-failed':
        metrics.reportFailed(e.reason);
        log.error({ code: 'HW_REPORT_FAILED', from: e.from, reason: e.reason }, e.message);
        say(`could not render ${e.from}: ${e.message}`);
        say(`raw data kept at ${e.kept}`);
        // Built but not written (a full or read-only volume): the Event still names the line, and says where the data is.
        if (e.report && wantsEvent(e.report.trigger, e.postMortem))
          outlive.event?.post(factsOf(e.report, `not written (${e.reason}); raw data kept at ${e.kept}`));
        break;
    }
  });

  let server: MetricsServer | undefined;
  if (watch.metricsPort !== undefined) {
    server = new MetricsServer(metrics, { port: watch.metricsPort, ready: () => watcher.scanned });
    try {
      const addr = await server.start();
      say(`metrics at http://${addr.address === '0.0.0.0' ? 'localhost' : addr.address}:${addr.port}/metrics`);
    } catch (e) {
      say(`cannot serve metrics on port ${watch.metricsPort}: ${errnoOf(e)}; going on without`);
    }
  }

  log.info({ code: 'HW_WATCH_STARTED', runDir, outputDir, events: watch.events, upload: watch.uploadUrl !== undefined }, 'watching');
  if (watch.once) {
    takeEarlySignals();
    await watcher.runOnce();
    await outlive.idle();
    await server?.stop();
    return watcher.failureCount > 0 ? 1 : 0;
  }

  await new Promise<void>((resolveStop) => {
    let signalled = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signalled++;
      if (signalled > 1) {
        log.warn({ code: 'HW_WATCH_STOP_NOW', signal: sig }, 'second signal: exiting without waiting for the reports');
        resolveStop();
        return;
      }
      log.info({ code: 'HW_WATCH_STOPPING', signal: sig }, 'stopping: rendering what is left');
      // Uploads and Events of the last reports are bounded (--upload-timeout, 5 s per Event).
      void watcher
        .stop()
        .then(() => outlive.idle())
        .then(resolveStop, resolveStop);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    watcher.start();
    if (lightEventSink()) outlive.event?.warm();
    for (const sig of takeEarlySignals()) onSignal(sig); // the job may have ended while we were loading
  });
  await server?.stop();
  return 0;
}

/** HIGHWATER_OOM_KILLS_BEFORE, set by highwater-init for the watcher it starts in the container: a count, or nothing. */
function oomKillsBefore(value: string | undefined): { oomKillsBefore?: number } {
  return value !== undefined && /^\d{1,15}$/.test(value) ? { oomKillsBefore: Number(value) } : {};
}
