/**
 * `highwater collect kubernetes`: the HighwaterOOM Events of one namespace or
 * of all, newer than `--since`, as the table a person wants (namespace/pod,
 * container, when, peak, top line, where the report is); with `--follow`,
 * new ones as the API server sends them (a watch from the list's
 * resourceVersion, resumed when the server closes it).
 */
import { humanBytes } from '../report/format.js';
import type { Logger } from '../log.js';
import type { EventsClient } from './client.js';
import { EVENT_REASON, rowOf, type OomEventRow } from './event.js';

export interface CollectKubernetesOptions {
  /** undefined = all namespaces. */
  namespace: string | undefined;
  /** Only Events newer than this (ms since the epoch); undefined = all. */
  sinceMs: number | undefined;
  follow: boolean;
  signal: AbortSignal;
  print: (line: string) => void;
}

const COLUMNS = ['NAMESPACE/POD', 'CONTAINER', 'WHEN', 'PEAK', 'TOP LINE', 'REPORT'] as const;
const WIDTHS = [40, 12, 21, 10, 48] as const;

function pad(s: string, w: number): string {
  return s.length >= w ? s.slice(0, w - 1) + '…' : s.padEnd(w);
}

/** `2026-11-29 18:45:00Z` */
function when(ms: number): string {
  return ms > 0
    ? new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d{3}Z$/, 'Z')
    : '-';
}

export function kubernetesTableHeader(): string {
  return COLUMNS.map((c, i) => (i < WIDTHS.length ? pad(c, WIDTHS[i]!) : c)).join(' ');
}

export function kubernetesTableRow(r: OomEventRow): string {
  const cells = [
    `${r.namespace}/${r.pod}`,
    r.container || '-',
    when(r.timeMs),
    r.peakBytes === undefined ? '-' : humanBytes(r.peakBytes),
    r.topLine || '-',
    r.where || r.note || '-',
  ];
  return cells.map((c, i) => (i < WIDTHS.length ? pad(c, WIDTHS[i]!) : c)).join(' ');
}

/** `30m`, `2h`, `1d`, `90s` → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export async function collectKubernetes(client: EventsClient, opts: CollectKubernetesOptions, log: Logger): Promise<number> {
  const seen = new Set<string>();
  let count = 0;
  const show = (ev: unknown): void => {
    const row = rowOf(ev);
    if (!row) return;
    const key = (ev as { metadata?: { uid?: string; name?: string; namespace?: string } }).metadata;
    const id = key?.uid ?? `${key?.namespace}/${key?.name}`;
    if (seen.has(id)) return;
    seen.add(id);
    if (opts.sinceMs !== undefined && row.timeMs < opts.sinceMs) return;
    opts.print(kubernetesTableRow(row));
    count++;
  };
  opts.print(kubernetesTableHeader());
  const { items, resourceVersion } = await client.list(opts.namespace, EVENT_REASON);
  const rows = items.map((ev) => [ev, rowOf(ev)?.timeMs ?? 0] as const).sort((a, b) => a[1] - b[1]);
  for (const [ev] of rows) show(ev);
  if (!opts.follow) return count;
  let rv = resourceVersion;
  while (!opts.signal.aborted) {
    try {
      await client.watch(
        opts.namespace,
        EVENT_REASON,
        rv,
        (ev) => {
          rv = (ev as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion ?? rv;
          show(ev);
        },
        opts.signal,
      );
    } catch (e) {
      if (opts.signal.aborted) break;
      log.warn({ code: (e as { code?: string }).code, err: (e as Error).message }, 'the watch of Events failed; retrying in 2 s');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  return count;
}
