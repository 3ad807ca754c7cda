/**
 * The watcher's Prometheus metrics, by Prometheus' naming conventions: base
 * units (bytes, seconds), `_total` counters, `highwater_build_info`, no pid
 * or path labels (every label has a small bounded set of values), Node's
 * default process metrics under the `highwater_` prefix. This module and
 * server.ts are the only ones that import prom-client. Counters are bumped
 * by the watcher as things happen; gauges read their values lazily from a
 * MetricsSource in `collect()` and never throw into a scrape
 * (docs/metrics.md says what each series means and what to join it with).
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** One tracked process, as the gauges need it (read at scrape time). */
export interface ProcessSample {
  pid: number;
  peakBytes: number;
  currentBytes: number;
  /** Available memory by the last readings; undefined when none were taken. */
  availableBytes: number | undefined;
  /** The container's memory limit by the last readings (0 = none). */
  limitBytes?: number | undefined;
  workingSetBytes?: number | undefined;
  swapBytes?: number | undefined;
  /** The floor of available memory in force in the shim's guard. */
  floorBytes?: number | undefined;
}

export interface MetricsSource {
  /** The tracked processes now (alive ones). May throw: the scrape still succeeds. */
  processes(): ProcessSample[];
}

export interface BuildInfo {
  version: string;
}

/** Sum of a field over the samples that have it; undefined when none has. */
function sumOf(samples: ProcessSample[], pick: (s: ProcessSample) => number | undefined): number | undefined {
  let total: number | undefined;
  for (const s of samples) {
    const v = pick(s);
    if (v !== undefined && Number.isFinite(v)) total = (total ?? 0) + v;
  }
  return total;
}

/**
 * The container-wide value of a reading: every tracked process of a pod's
 * app container reads the same cgroup, so the first process with readings
 * speaks for the container (the lowest pid: stable from scrape to scrape).
 */
function containerReading(samples: ProcessSample[], pick: (s: ProcessSample) => number | undefined): number | undefined {
  for (const s of [...samples].sort((a, b) => a.pid - b.pid)) {
    const v = pick(s);
    if (v !== undefined && Number.isFinite(v)) return v;
  }
  return undefined;
}

/**
 * A gauge without labels that is absent from the scrape while its value is
 * unknown (prom-client would print 0, which for "available bytes" reads as
 * an out-of-memory container).
 */
class OptionalGauge extends Gauge {
  constructor(name: string, help: string, registers: Registry[], value: () => number | undefined) {
    super({ name, help, registers });
    this.value = value;
  }
  private readonly value: () => number | undefined;

  override async get(): ReturnType<Gauge['get']> {
    const v = this.value();
    const known = v !== undefined && Number.isFinite(v);
    if (known) this.set(v);
    const m = await super.get();
    return known ? m : { ...m, values: [] };
  }
}

export class Metrics {
  readonly registry = new Registry();
  private readonly reports: Counter<'trigger'>;
  private readonly detections: Counter<'reason'>;
  private readonly failures: Counter<'reason'>;
  private readonly eventFailures: Counter<'code'>;
  private readonly events: Counter;
  private readonly uploads: Counter<'result'>;
  private lastDetectionMs: number | undefined;
  /** Set when a source read failed during the last scrape (tests, logs). */
  lastCollectError: string | undefined;

  constructor(source: MetricsSource, build: BuildInfo = { version: 'unknown' }, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    // The event-loop lag histogram samples every 10 ms by default: about 1 % of
    // a core in an idle sidecar (measured). 100 ms costs about 0.1 %.
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'highwater_', eventLoopMonitoringPrecision: 100 });
    new Gauge({
      name: 'highwater_build_info',
      help: 'Always 1; the labels say which highwater and which Node serve these metrics.',
      labelNames: ['version', 'nodejs_version'],
      registers,
    }).set({ version: build.version, nodejs_version: process.versions.node }, 1);
    this.reports = new Counter({
      name: 'highwater_reports_written_total',
      help: 'Reports written, by trigger (exit, oom, killed, signal, api, request).',
      labelNames: ['trigger'],
      registers,
    });
    this.detections = new Counter({
      name: 'highwater_oom_detections_total',
      help: 'Out-of-memory detections, once per process, by reason (low-available, swap, failed-allocation, unknown).',
      labelNames: ['reason'],
      registers,
    });
    this.failures = new Counter({
      name: 'highwater_report_failures_total',
      help: 'Reports that could not be written or uploaded, by reason (an errno such as EROFS or ENOSPC, an HW_ERR_* code, or upload).',
      labelNames: ['reason'],
      registers,
    });
    this.events = new Counter({
      name: 'highwater_kubernetes_events_posted_total',
      help: 'HighwaterOOM Events the Kubernetes API accepted.',
      registers,
    });
    this.eventFailures = new Counter({
      name: 'highwater_kubernetes_event_failures_total',
      help: 'HighwaterOOM Events that could not be posted, by code (HW_ERR_K8S_NO_CONFIG, HW_ERR_K8S_FORBIDDEN, HW_ERR_K8S_UNREACHABLE, HW_ERR_K8S_REJECTED).',
      labelNames: ['code'],
      registers,
    });
    this.uploads = new Counter({
      name: 'highwater_report_uploads_total',
      help: 'Report files uploaded with --upload-url, by result (ok, failed).',
      labelNames: ['result'],
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
    /** A gauge read at scrape time, absent while its value is unknown. */
    const lazy = (name: string, help: string, value: () => number | undefined): void => void new OptionalGauge(name, help, registers, value);
    lazy('highwater_watched_processes', 'Python processes tracked in the run dir now.', () => samples().length);
    lazy('highwater_tracked_bytes', 'Memory tracked by the shim now, summed over the tracked processes (bytes).', () =>
      sumOf(samples(), (s) => s.currentBytes),
    );
    lazy('highwater_tracked_peak_bytes', "Peak of tracked memory, summed over the tracked processes' own peaks (bytes).", () =>
      sumOf(samples(), (s) => s.peakBytes),
    );
    lazy(
      'highwater_memory_limit_bytes',
      "The application container's memory limit as its shim reads it (bytes; absent when unlimited or before readings).",
      () => {
        const v = containerReading(samples(), (s) => s.limitBytes);
        return v === 0 ? undefined : v;
      },
    );
    lazy('highwater_memory_working_set_bytes', 'Working set of the application container by the last readings (bytes).', () =>
      containerReading(samples(), (s) => s.workingSetBytes),
    );
    lazy('highwater_memory_available_bytes', 'Memory available to the application container by the last readings (bytes).', () =>
      containerReading(samples(), (s) => s.availableBytes),
    );
    lazy('highwater_memory_swap_bytes', 'Swap used by the application container by the last readings (bytes).', () =>
      containerReading(samples(), (s) => s.swapBytes),
    );
    lazy('highwater_memory_floor_bytes', "The floor of available memory in force in the shim's guard (bytes).", () =>
      containerReading(samples(), (s) => s.floorBytes),
    );
    lazy('highwater_last_oom_detection_timestamp_seconds', 'Unix time of the last out-of-memory detection (absent before the first).', () =>
      this.lastDetectionMs === undefined ? undefined : this.lastDetectionMs / 1000,
    );
    lazy('highwater_seconds_since_last_oom_detection', 'Seconds since the last out-of-memory detection (absent before the first).', () =>
      this.lastDetectionMs === undefined ? undefined : (Date.now() - this.lastDetectionMs) / 1000,
    );
  }

  reportWritten(trigger: string): void {
    this.reports.inc({ trigger });
  }

  oom(reason: string): void {
    this.detections.inc({ reason });
    this.lastDetectionMs = Date.now();
  }

  reportFailed(reason: string): void {
    this.failures.inc({ reason });
  }

  eventPosted(): void {
    this.events.inc();
  }

  eventFailed(code: string): void {
    this.eventFailures.inc({ code });
  }

  uploadDone(ok: boolean): void {
    this.uploads.inc({ result: ok ? 'ok' : 'failed' });
    if (!ok) this.failures.inc({ reason: 'upload' });
  }

  /** The exposition text; never rejects (a failing collector becomes a comment). */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
