/**
 * The HighwaterOOM Event (events.k8s.io/v1), built as plain data (pure: no
 * SDK here; kubernetes/event-sink.ts posts it). Two reports get one: an OOM
 * the guard caught (`trigger: oom`, action OOMDetected) and the post-mortem
 * of a process that vanished without a dump (`trigger: killed`, action
 * Killed): with `memory.oom.group=1` (Kubernetes >= 1.28 on cgroup v2) the
 * kernel's OOM killer SIGKILLs the whole container at once, and the state
 * file on the shared volume is all that is left to say where memory went. Every field the API server's
 * validation requires is set, the deprecated ones are left unset, and the
 * lengths are kept: reason/action/reportingInstance ≤ 128 characters, note ≤
 * 1024 bytes cut on a UTF-8 boundary, namespace = the pod's.
 * The facts `collect kubernetes` prints also go into annotations so that
 * reading them back never depends on parsing the human note.
 */
import { humanBytes } from '../report/format.js';
import type { ReportJson } from '../report/model.js';
import { topLine } from '../watcher/summary.js';

/** The pod the watcher runs in, from the downward API (docs/configuration.md). */
export interface PodRef {
  name: string;
  namespace: string;
  /** Empty when HIGHWATER_POD_UID is not set (the Event then regards the pod by name only). */
  uid: string;
  node: string;
  /** The application container's name (HIGHWATER_APP_CONTAINER), for `regarding.fieldPath`. */
  container: string;
}

export const EVENT_REASON = 'HighwaterOOM';
export const EVENT_ACTION = 'OOMDetected';
/** The action of the post-mortem of a process killed before the guard could act. */
export const KILLED_ACTION = 'Killed';

/**
 * The reports that get an Event: an OOM caught (a dump, or the post-mortem of
 * a shim that exited 53), or the post-mortem of a process killed before it
 * could be (`killed`, watcher/post-mortem.ts).
 */
export function wantsEvent(trigger: string, postMortem: boolean): boolean {
  return trigger === 'oom' || (postMortem && trigger === 'killed');
}
export const REPORTING_CONTROLLER = 'highwater.dev/watch';
export const NOTE_MAX_BYTES = 1024;
const ANNOTATION = 'highwater.dev/';

/** The pod from HIGHWATER_POD_NAME / _NAMESPACE / _UID / HIGHWATER_NODE_NAME; undefined without name or namespace. */
export function podFromEnv(env: NodeJS.ProcessEnv): PodRef | undefined {
  const v = (k: string): string => (env[k] ?? '').trim();
  const name = v('HIGHWATER_POD_NAME');
  const namespace = v('HIGHWATER_POD_NAMESPACE');
  if (!name || !namespace) return undefined;
  return { name, namespace, uid: v('HIGHWATER_POD_UID'), node: v('HIGHWATER_NODE_NAME'), container: v('HIGHWATER_APP_CONTAINER') };
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}

/** RFC 3339 with exactly six fractional digits: the API server's MicroTime. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** What the Event says: the same facts as the termination message. */
export interface OomFacts {
  /** `killed`: the post-mortem of a process gone without a dump. @default 'oom' */
  trigger?: 'oom' | 'killed';
  reason: string;
  peakBytes: number;
  /** 0 = no limit known. */
  limitBytes: number;
  topLine: string;
  /** Where the report is: a path on the report volume, or its uploaded URL. */
  where: string;
}

export function factsOf(report: ReportJson, where: string): OomFacts {
  return {
    trigger: report.trigger === 'killed' ? 'killed' : 'oom',
    reason: report.oomReason ?? 'unknown',
    peakBytes: report.peakBytes,
    limitBytes: report.memory?.limitBytes ?? 0,
    topLine: topLine(report) || '(no Python frame)',
    where,
  };
}

/**
 * `out of memory (low-available): peak 350 MiB of limit 400 MiB at job.py:31 x = ...; report: /reports/.../index.html`,
 * or for a post-mortem `killed (SIGKILL, most likely the kernel OOM killer) before highwater could act: peak ... at ...; report: ...`
 */
export function oomNote(f: OomFacts): string {
  const limit = f.limitBytes > 0 ? ` of limit ${humanBytes(f.limitBytes)}` : '';
  const tail = `; report: ${f.where}`;
  const why = f.trigger === 'killed' ? 'killed (SIGKILL, most likely the kernel OOM killer) before highwater could act' : `out of memory (${f.reason})`;
  const head = `${why}: peak ${humanBytes(f.peakBytes)}${limit} at `;
  // The top line is the part that may be long (a line of code): cut it first, so the report path survives.
  const room = NOTE_MAX_BYTES - Buffer.byteLength(head + tail);
  const line = room > 16 ? truncateUtf8(f.topLine, room) : '';
  return truncateUtf8(head + line + tail, NOTE_MAX_BYTES);
}

/** A DNS-subdomain event name: `<pod>.<unique hex>` (the kubelet's convention), ≤ 253 characters. */
export function eventName(pod: string, nowMs: number, random: number): string {
  const suffix = `.${nowMs.toString(16)}${Math.floor(random * 0xffff)
    .toString(16)
    .padStart(4, '0')}`;
  return pod.slice(0, 253 - suffix.length).replace(/[.-]+$/, '') + suffix;
}

/** The events.k8s.io/v1 Event body (plain JSON). */
export function oomEvent(pod: PodRef, facts: OomFacts, nowMs: number, random = Math.random()): Record<string, unknown> {
  const regarding: Record<string, string> = { apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace };
  if (pod.uid) regarding.uid = pod.uid;
  if (pod.container) regarding.fieldPath = `spec.containers{${pod.container}}`;
  return {
    apiVersion: 'events.k8s.io/v1',
    kind: 'Event',
    metadata: {
      name: eventName(pod.name, nowMs, random),
      namespace: pod.namespace,
      annotations: {
        [`${ANNOTATION}peak-bytes`]: String(facts.peakBytes),
        [`${ANNOTATION}limit-bytes`]: String(facts.limitBytes),
        [`${ANNOTATION}top-line`]: truncateUtf8(facts.topLine, 512),
        [`${ANNOTATION}report`]: truncateUtf8(facts.where, 2048),
        [`${ANNOTATION}container`]: pod.container,
        [`${ANNOTATION}trigger`]: facts.trigger ?? 'oom',
      },
    },
    eventTime: microTime(nowMs),
    reportingController: REPORTING_CONTROLLER,
    reportingInstance: truncateUtf8(`${REPORTING_CONTROLLER}-${pod.node || pod.name}`, 128),
    action: facts.trigger === 'killed' ? KILLED_ACTION : EVENT_ACTION,
    reason: EVENT_REASON,
    type: 'Warning',
    regarding,
    note: oomNote(facts),
  };
}

/** One row of `collect kubernetes`, read back from an Event (any shape: it comes from the API). */
export interface OomEventRow {
  namespace: string;
  pod: string;
  container: string;
  timeMs: number;
  peakBytes: number | undefined;
  topLine: string;
  where: string;
  note: string;
}

export function rowOf(ev: unknown): OomEventRow | undefined {
  const e = ev as {
    metadata?: { namespace?: string; annotations?: Record<string, string>; creationTimestamp?: unknown };
    reason?: string;
    eventTime?: unknown;
    regarding?: { name?: string; namespace?: string; fieldPath?: string };
    note?: string;
  } | null;
  if (!e || e.reason !== EVENT_REASON) return undefined;
  const a = e.metadata?.annotations ?? {};
  const time = new Date((e.eventTime ?? e.metadata?.creationTimestamp ?? 0) as string | number | Date).getTime();
  const fromField = /^spec\.containers\{(.+)\}$/.exec(e.regarding?.fieldPath ?? '')?.[1];
  const peak = Number(a[`${ANNOTATION}peak-bytes`]);
  return {
    namespace: e.regarding?.namespace ?? e.metadata?.namespace ?? '',
    pod: e.regarding?.name ?? '',
    container: a[`${ANNOTATION}container`] || fromField || '',
    timeMs: Number.isFinite(time) ? time : 0,
    peakBytes: Number.isFinite(peak) && a[`${ANNOTATION}peak-bytes`] !== undefined ? peak : undefined,
    topLine: a[`${ANNOTATION}top-line`] ?? '',
    where: a[`${ANNOTATION}report`] ?? '',
    note: e.note ?? '',
  };
}
