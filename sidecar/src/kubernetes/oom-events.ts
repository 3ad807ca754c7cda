/**
 * Posts one HighwaterOOM Event per OOM report, for `highwater watch --events`.
 * Never throws and never blocks the watcher: without API access (no pod
 * identity, no config, 401/403, API down, timeout) it logs one line with the
 * `HW_ERR_K8S_*` code (the first time each code occurs; later ones at debug),
 * counts the failure, and everything else goes on.
 */
import { isHighwaterError } from '../errors.js';
import type { Logger } from '../log.js';
import type { EventSink } from './event-sink.js';
import { oomEvent, type OomFacts, type PodRef } from './event.js';

export interface OomEventPosterOptions {
  /** The pod from the downward API; undefined when the variables are not set. */
  pod: PodRef | undefined;
  /** Made on first use (may raise HW_ERR_K8S_NO_CONFIG); async so client-node loads only when needed (kubernetes/event-sink.ts). */
  client: () => Promise<EventSink>;
  log: Logger;
  onPosted?: () => void;
  onFailed?: (code: string) => void;
  /** @default 5000 */
  timeoutMs?: number;
}

export class OomEventPoster {
  private client: Promise<EventSink> | undefined;
  private readonly loggedCodes = new Set<string>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly opts: OomEventPosterOptions) {}

  /**
   * Open the Event sink now (at start-up, in the background) rather than at
   * the first OOM, so that a missing config is logged now, once, with its
   * code. Called only when the sink is light (kubernetes/event-sink.ts): in
   * a pod it is node:https; client-node (about 55 MiB of RSS, 1.4 s of CPU)
   * is loaded only when an Event is posted.
   */
  warm(): void {
    if (!this.opts.pod) return;
    this.clientOnce().then(
      () => this.opts.log.debug({ code: 'HW_K8S_READY' }, 'Kubernetes API client ready'),
      (e: unknown) => this.logOnce(isHighwaterError(e) ? e.code : 'HW_ERR_K8S_NO_CONFIG', `no Kubernetes API access for Events: ${(e as Error).message}`),
    );
  }

  private clientOnce(): Promise<EventSink> {
    this.client ??= this.opts.client();
    return this.client;
  }

  /** Post the Event in the background; `idle()` waits for it. */
  post(facts: OomFacts, nowMs = Date.now()): void {
    const p = this.send(facts, nowMs).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves when every Event started so far is posted or has failed. */
  async idle(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  private async send(facts: OomFacts, nowMs: number): Promise<void> {
    const { pod, log } = this.opts;
    try {
      if (!pod) {
        this.fail('HW_ERR_K8S_NO_CONFIG', 'cannot post the HighwaterOOM Event: HIGHWATER_POD_NAME and HIGHWATER_POD_NAMESPACE are not set (downward API)');
        return;
      }
      const client = await this.clientOnce();
      const body = oomEvent(pod, facts, nowMs);
      await client.create(pod.namespace, body, this.opts.timeoutMs ?? 5000);
      this.opts.onPosted?.();
      log.info(
        { code: 'HW_K8S_EVENT_POSTED', event: (body.metadata as { name: string }).name, namespace: pod.namespace, pod: pod.name, ms: Date.now() - nowMs },
        'HighwaterOOM Event posted',
      );
    } catch (e) {
      const code = isHighwaterError(e) ? e.code : 'HW_ERR_K8S_UNREACHABLE';
      this.fail(code, `cannot post the HighwaterOOM Event: ${(e as Error).message}`);
    }
  }

  private fail(code: string, message: string): void {
    this.opts.onFailed?.(code);
    this.logOnce(code, message);
  }

  private logOnce(code: string, message: string): void {
    const first = !this.loggedCodes.has(code);
    this.loggedCodes.add(code);
    if (first) this.opts.log.warn({ code }, `${message}; going on without Events`);
    else this.opts.log.debug({ code }, message);
  }
}
