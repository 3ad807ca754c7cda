/**
 * The watcher's Prometheus metrics. This module and server.ts are the only
 * ones that import prom-client. Counters are bumped by the watcher as things
 * happen; per-process gauges read their values lazily from a MetricsSource in
 * `collect()` and never throw into a scrape (docs/metrics.md).
 */
import { Counter, Gauge, Registry } from 'prom-client';

/** What the per-process gauges show, read at scrape time. */
export interface ProcessSample {
  pid: number;
  peakBytes: number;
  currentBytes: number;
  /** Available memory by the last readings; undefined when none were taken. */
  availableBytes: number | undefined;
}

export interface MetricsSource {
  /** The tracked processes now (alive ones). May throw: the scrape still succeeds. */
  processes(): ProcessSample[];
}

export class Metrics {
  readonly registry = new Registry();
  private readonly reports: Counter<'trigger'>;
  private readonly ooms: Counter<'reason'>;
  private readonly failures: Counter<'reason'>;
  /** Set when a source read failed during the last scrape (tests, logs). */
  lastCollectError: string | undefined;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    this.reports = new Counter({
      name: 'highwater_reports_total',
      help: 'Reports written, by trigger (exit, oom, killed, signal, api, request).',
      labelNames: ['trigger'],
      registers,
    });
    this.ooms = new Counter({
      name: 'highwater_oom_total',
      help: 'Out-of-memory events, by reason (low-available, swap, failed-allocation).',
      labelNames: ['reason'],
      registers,
    });
    this.failures = new Counter({
      name: 'highwater_report_failures_total',
      help: 'Reports that could not be written, by reason (errno such as EROFS or ENOSPC, or an error code).',
      labelNames: ['reason'],
      registers,
    });
    // One read of the source per scrape, shared by the gauges below.
    let cached: { at: number; samples: ProcessSample[] } | undefined;
    const samples = (): ProcessSample[] => {
      const now = Date.now();
      if (cached && now - cached.at < 50) return cached.samples;
      try {
        cached = { at: now, samples: source.processes() };
        this.lastCollectError = undefined;
      } catch (e) {
        this.lastCollectError = e instanceof Error ? e.message : String(e);
        cached = { at: now, samples: [] };
      }
      return cached.samples;
    };
    new Gauge({
      name: 'highwater_tracked_processes',
      help: 'Python processes tracked in the run dir now.',
      registers,
      collect() {
        this.set(samples().length);
      },
    });
    const perPid = (name: string, help: string, pick: (s: ProcessSample) => number | undefined): void => {
      new Gauge({
        name,
        help,
        labelNames: ['pid'],
        registers,
        collect() {
          this.reset();
          for (const s of samples()) {
            const v = pick(s);
            if (v !== undefined && Number.isFinite(v)) this.set({ pid: String(s.pid) }, v);
          }
        },
      });
    };
    perPid('highwater_peak_bytes', 'Peak of tracked memory of the process (bytes).', (s) => s.peakBytes);
    perPid('highwater_current_bytes', 'Tracked memory of the process now (bytes).', (s) => s.currentBytes);
    perPid('highwater_available_bytes', 'Memory available to the process by the last readings (bytes).', (s) => s.availableBytes);
  }

  reportWritten(trigger: string): void {
    this.reports.inc({ trigger });
  }

  oom(reason: string): void {
    this.ooms.inc({ reason });
  }

  reportFailed(reason: string): void {
    this.failures.inc({ reason });
  }

  /** The exposition text; never rejects (a failing collector becomes a comment). */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
