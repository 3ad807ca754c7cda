/**
 * The settings of `highwater watch` beyond the shared Config: flags, then
 * `HIGHWATER_*` variables, then defaults, validated once by loadWatchConfig()
 * (docs/configuration.md). Raises HW_ERR_USAGE / HW_ERR_CONFIG.
 */
import { HighwaterError } from '../errors.js';
import { podFromEnv, type PodRef } from '../kubernetes/event.js';
import { checkTemplate } from '../upload/template.js';
import { configError } from './config.js';

/** Values of the `highwater watch` flags (undefined = not given). */
export interface WatchFlags {
  metricsPort?: string;
  warnAfter?: string;
  once?: boolean;
  events?: boolean;
  uploadUrl?: string;
  uploadTimeout?: string;
}

/** Settings of `highwater watch` beyond the shared Config (docs/configuration.md). */
export interface WatchConfig {
  /** The run dir shared with the shims. Flag `--run-dir`, else env `HIGHWATER_RUN_DIR`. Required. */
  runDir: string;
  /**
   * Port of the metrics and health server (`/metrics`, `/healthz`, `/readyz`);
   * 0 = any free port, `off` = no server (undefined here).
   * Flag `--metrics-port`, env `HIGHWATER_METRICS_PORT`.
   * @default 19753 (DEFAULT_METRICS_PORT)
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
  /**
   * Post a HighwaterOOM Event (events.k8s.io/v1) on the pod for every OOM
   * report. Flag `--events`, env `HIGHWATER_EVENTS=1`.
   * @default false
   */
  events: boolean;
  /**
   * PUT every report file to this URL template (upload/template.ts).
   * Flag `--upload-url`, env `HIGHWATER_UPLOAD_URL`.
   * @default undefined (no upload)
   */
  uploadUrl: string | undefined;
  /**
   * Time for the upload of one report, retries included; keep it inside the
   * pod's terminationGracePeriodSeconds. Flag `--upload-timeout SECONDS`,
   * env `HIGHWATER_UPLOAD_TIMEOUT`.
   * @default 20000
   */
  uploadTimeoutMs: number;
  /** The pod from the downward-API variables (HIGHWATER_POD_NAME, …); undefined outside Kubernetes. */
  pod: PodRef | undefined;
}

/**
 * The default metrics port. Not 9753: Prometheus' default port allocation
 * list has filled the whole 9100-9999 exporter range since 2023, so any
 * port there belongs to some exporter. 19753 is outside it, below the Linux
 * ephemeral range (32768-60999) and the Kubernetes NodePort range
 * (30000-32767). docs/metrics.md.
 */
export const DEFAULT_METRICS_PORT = 19753;

/** Flags, then `HIGHWATER_*` variables, then defaults. Raises HW_ERR_USAGE / HW_ERR_CONFIG. */
export function loadWatchConfig(runDirFlag: string | undefined, flags: WatchFlags, env: NodeJS.ProcessEnv = process.env): WatchConfig {
  const e = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  const runDir = runDirFlag ?? e('HIGHWATER_RUN_DIR');
  if (runDir === undefined) throw new HighwaterError('HW_ERR_USAGE', 'highwater watch: --run-dir DIR is required (or HIGHWATER_RUN_DIR)');

  let metricsPort: number | undefined = DEFAULT_METRICS_PORT;
  const [portText, portName] =
    flags.metricsPort !== undefined ? [flags.metricsPort, '--metrics-port'] : [e('HIGHWATER_METRICS_PORT'), 'HIGHWATER_METRICS_PORT'];
  if (portText !== undefined && portText.trim() === 'off') metricsPort = undefined;
  else if (portText !== undefined) {
    metricsPort = Number(portText);
    if (!/^\d+$/.test(portText.trim()) || metricsPort > 65535)
      throw configError(portName, portText, 'a port number from 0 to 65535 (0 = any free port) or off');
  }

  let warnAfterMs = 5000;
  const [warnText, warnName] = flags.warnAfter !== undefined ? [flags.warnAfter, '--warn-after'] : [e('HIGHWATER_WARN_AFTER'), 'HIGHWATER_WARN_AFTER'];
  if (warnText !== undefined) {
    const s = Number(warnText);
    if (!/^\d+(\.\d+)?$/.test(warnText.trim()) || s > 86400) throw configError(warnName, warnText, 'seconds from 0 to 86400 (0 = never)');
    warnAfterMs = Math.round(s * 1000);
  }
  let events = flags.events ?? false;
  const eventsText = e('HIGHWATER_EVENTS');
  if (flags.events === undefined && eventsText !== undefined) {
    if (!/^(1|0|true|false|yes|no|on|off)$/i.test(eventsText.trim())) throw configError('HIGHWATER_EVENTS', eventsText, '1 or 0');
    events = /^(1|true|yes|on)$/i.test(eventsText.trim());
  }

  const uploadUrl = flags.uploadUrl ?? e('HIGHWATER_UPLOAD_URL');
  if (uploadUrl !== undefined) checkTemplate(uploadUrl, flags.uploadUrl !== undefined ? '--upload-url' : 'HIGHWATER_UPLOAD_URL');
  let uploadTimeoutMs = 20_000;
  const [upText, upName] =
    flags.uploadTimeout !== undefined ? [flags.uploadTimeout, '--upload-timeout'] : [e('HIGHWATER_UPLOAD_TIMEOUT'), 'HIGHWATER_UPLOAD_TIMEOUT'];
  if (upText !== undefined) {
    const s = Number(upText);
    if (!/^\d+(\.\d+)?$/.test(upText.trim()) || s <= 0 || s > 3600) throw configError(upName, upText, 'seconds, more than 0 and at most 3600');
    uploadTimeoutMs = Math.round(s * 1000);
  }
  return {
    runDir,
    metricsPort,
    warnAfterMs,
    once: flags.once ?? false,
    terminationLog: e('HIGHWATER_TERMINATION_LOG') ?? '/dev/termination-log',
    events,
    uploadUrl,
    uploadTimeoutMs,
    pod: podFromEnv(env),
  };
}
