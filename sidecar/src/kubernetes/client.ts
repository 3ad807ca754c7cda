/**
 * The one module that imports @kubernetes/client-node (v1+: ESM, one object
 * argument per call). It finds the API server (KUBECONFIG, else the pod's
 * service account, else ~/.kube/config), posts and lists events.k8s.io/v1
 * Events with a timeout, and turns every failure into a HighwaterError with
 * an `HW_ERR_K8S_*` code: NO_CONFIG (nothing to reach the API with),
 * FORBIDDEN (401/403: no token or no RBAC), REJECTED (another 4xx: the body
 * failed validation), UNREACHABLE (network error, 5xx, timeout).
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiException, EventsV1Api, KubeConfig, Watch, Observable, type ConfigurationOptions } from '@kubernetes/client-node';
import { HighwaterError } from '../errors.js';

export const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** A KubeConfig built from options (tests; `--kube-api-url`-style use). */
export interface KubeOptions {
  server: string;
  token?: string;
  caFile?: string;
  skipTLSVerify?: boolean;
}

/**
 * KUBECONFIG when set; in a pod, the service account (in-cluster config:
 * KUBERNETES_SERVICE_HOST/PORT and the mounted token); else ~/.kube/config.
 * Raises HW_ERR_K8S_NO_CONFIG when there is none of these.
 */
export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env, options?: KubeOptions): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (options) {
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: options.server, caFile: options.caFile, skipTLSVerify: options.skipTLSVerify ?? false }],
        users: [{ name: 'u', token: options.token }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      return kc;
    }
    if (env.KUBECONFIG) {
      kc.loadFromDefault();
      return kc;
    }
    if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) {
      if (!existsSync(SERVICE_ACCOUNT_TOKEN))
        throw new HighwaterError('HW_ERR_K8S_NO_CONFIG', `no service account token at ${SERVICE_ACCOUNT_TOKEN} (automountServiceAccountToken: false?)`);
      kc.loadFromCluster();
      return kc;
    }
    if (existsSync(join(homedir(), '.kube', 'config'))) {
      kc.loadFromDefault();
      return kc;
    }
  } catch (e) {
    if (e instanceof HighwaterError) throw e;
    throw new HighwaterError('HW_ERR_K8S_NO_CONFIG', `cannot load the Kubernetes config: ${(e as Error).message}`, { cause: e });
  }
  throw new HighwaterError('HW_ERR_K8S_NO_CONFIG', 'no Kubernetes API access: not in a pod (KUBERNETES_SERVICE_HOST unset), no KUBECONFIG, no ~/.kube/config');
}

/** The namespace of the kubeconfig's current context (in a pod: the pod's), else `default`. */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
}

/** The HTTP status and the API server's message of a failed call, as a HighwaterError. */
export function k8sError(e: unknown, what: string): HighwaterError {
  if (e instanceof HighwaterError) return e;
  if (e instanceof ApiException) {
    const status = e.code as number;
    let body = e.body as { message?: unknown } | string | undefined;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body) as { message?: unknown }; // a Status object, as text
      } catch {
        // not JSON: shown as it is, shortened
      }
    }
    const message = typeof body === 'object' && body && typeof body.message === 'string' ? body.message : typeof body === 'string' ? body.slice(0, 300) : '';
    const code = status === 401 || status === 403 ? 'HW_ERR_K8S_FORBIDDEN' : status >= 400 && status < 500 ? 'HW_ERR_K8S_REJECTED' : 'HW_ERR_K8S_UNREACHABLE';
    return new HighwaterError(code, `${what}: HTTP ${status}${message ? `: ${message}` : ''}`, { cause: e });
  }
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  const detail = err.name === 'TimeoutError' || err.name === 'AbortError' ? 'timed out' : (err.cause?.code ?? err.cause?.message ?? err.message ?? String(e));
  return new HighwaterError('HW_ERR_K8S_UNREACHABLE', `${what}: ${detail}`, { cause: e });
}

/** Per-call options that abort the request after `timeoutMs`. */
function withTimeout(timeoutMs: number): ConfigurationOptions {
  // The object-parameter API hands these straight to the observable layer: middleware answers Observables.
  return {
    middlewareMergeStrategy: 'append',
    middleware: [
      {
        pre: (ctx) => {
          ctx.setSignal(AbortSignal.timeout(timeoutMs));
          return new Observable(Promise.resolve(ctx));
        },
        post: (res) => new Observable(Promise.resolve(res)),
      },
    ],
  };
}

export class EventsClient {
  private readonly api: EventsV1Api;

  constructor(private readonly kc: KubeConfig) {
    this.api = kc.makeApiClient(EventsV1Api);
  }

  /** POST one Event (a plain events.k8s.io/v1 body). Raises HW_ERR_K8S_*. */
  async create(namespace: string, body: Record<string, unknown>, timeoutMs = 5000): Promise<void> {
    try {
      // The body is built as plain JSON (kubernetes/event.ts): eventTime is already a MicroTime string.
      await this.api.createNamespacedEvent({ namespace, body: body as never }, withTimeout(timeoutMs));
    } catch (e) {
      throw k8sError(e, 'posting the Event');
    }
  }

  /** Events of one namespace, or of all when namespace is undefined, filtered by reason. */
  async list(namespace: string | undefined, reason: string, timeoutMs = 15000): Promise<{ items: unknown[]; resourceVersion: string | undefined }> {
    const fieldSelector = `reason=${reason}`;
    try {
      const res =
        namespace === undefined
          ? await this.api.listEventForAllNamespaces({ fieldSelector }, withTimeout(timeoutMs))
          : await this.api.listNamespacedEvent({ namespace, fieldSelector }, withTimeout(timeoutMs));
      return { items: res.items, resourceVersion: res.metadata?.resourceVersion };
    } catch (e) {
      throw k8sError(e, 'listing Events');
    }
  }

  /**
   * Watch Events from `resourceVersion` on; `onEvent` gets every ADDED one.
   * Resolves when the watch ends (server closed it, error, or `signal`).
   */
  async watch(
    namespace: string | undefined,
    reason: string,
    resourceVersion: string | undefined,
    onEvent: (obj: unknown) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const path = namespace === undefined ? '/apis/events.k8s.io/v1/events' : `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`;
    await new Promise<void>((resolve, reject) => {
      let controller: AbortController | undefined;
      const onAbort = (): void => controller?.abort();
      new Watch(this.kc)
        .watch(
          path,
          { fieldSelector: `reason=${reason}`, resourceVersion, allowWatchBookmarks: false },
          (phase, obj) => {
            if (phase === 'ADDED') onEvent(obj);
          },
          (err) => {
            signal.removeEventListener('abort', onAbort);
            if (err && !signal.aborted && (err as { name?: string }).name !== 'AbortError') reject(k8sError(err, 'watching Events'));
            else resolve();
          },
        )
        .then(
          (c) => {
            controller = c;
            if (signal.aborted) c.abort();
            else signal.addEventListener('abort', onAbort, { once: true });
          },
          (e: unknown) => reject(k8sError(e, 'watching Events')),
        );
    });
  }
}
