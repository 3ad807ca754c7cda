/**
 * Posting an Event from inside a pod without @kubernetes/client-node.
 *
 * Why: loading client-node (its generated client for every API group, the
 * auth plugins, its YAML and HTTP stacks) adds about 55 MiB to the sidecar's
 * resident memory for good, which alone breaks its < 80 MiB budget
 * (docs/kubernetes.md, "Measured"). The sidecar makes one kind of call —
 * `POST /apis/events.k8s.io/v1/namespaces/<ns>/events` — and in a pod its
 * credentials are three fixed things: the service's host and port from the
 * environment, the service account token and the cluster CA from the mounted
 * service-account directory. That needs node:https and nothing else.
 * Everything else (KUBECONFIG, ~/.kube/config, `collect kubernetes`'s list
 * and watch) stays with client-node (kubernetes/client.ts), loaded only then.
 *
 * Errors carry the same `HW_ERR_K8S_*` codes as kubernetes/client.ts:
 * NO_CONFIG (no token mounted), FORBIDDEN (401/403), REJECTED (another 4xx),
 * UNREACHABLE (network error, 5xx, timeout).
 */
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { HighwaterError } from '../errors.js';

/** Where the kubelet mounts the pod's service account (token, ca.crt, namespace). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The API server as a pod sees it. */
export interface InClusterTarget {
  /** `https://<host>:<port>` (IPv6 hosts in brackets). */
  server: string;
  tokenPath: string;
  /** The cluster CA; undefined only when the file is missing (then the system CAs are used). */
  ca: Buffer | undefined;
}

/** True when this process runs in a pod (the kubelet sets these for every container). */
export function inPod(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT);
}

/**
 * The in-cluster target from KUBERNETES_SERVICE_HOST/PORT and the
 * service-account directory. Raises HW_ERR_K8S_NO_CONFIG when not in a pod
 * or when no token is mounted (automountServiceAccountToken: false).
 */
export function inClusterTarget(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): InClusterTarget {
  const host = env.KUBERNETES_SERVICE_HOST?.trim();
  const port = env.KUBERNETES_SERVICE_PORT?.trim();
  if (!host || !port) throw new HighwaterError('HW_ERR_K8S_NO_CONFIG', 'not in a pod: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set');
  if (!/^\d{1,5}$/.test(port)) throw new HighwaterError('HW_ERR_K8S_NO_CONFIG', `KUBERNETES_SERVICE_PORT is not a port: ${JSON.stringify(port)}`);
  const tokenPath = join(dir, 'token');
  if (!existsSync(tokenPath))
    throw new HighwaterError('HW_ERR_K8S_NO_CONFIG', `no service account token at ${tokenPath} (automountServiceAccountToken: false?)`);
  const caPath = join(dir, 'ca.crt');
  let ca: Buffer | undefined;
  try {
    ca = readFileSync(caPath);
  } catch {
    ca = undefined; // verified against the system CAs then, never skipped
  }
  return { server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`, tokenPath, ca };
}

/** What one request needs; `server` may be http:// only for tests' fakes. */
export interface ApiCall {
  server: string;
  /** Read at every call: projected service-account tokens are rotated by the kubelet. */
  token: () => string;
  ca?: Buffer;
  method: 'POST';
  path: string;
  body: unknown;
  timeoutMs: number;
}

/** The API server's own words from a Status body, shortened. */
function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: unknown };
    if (typeof s.message === 'string') return s.message.slice(0, 300);
  } catch {
    // not JSON: shown as it is
  }
  return text.slice(0, 300);
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** One JSON request; resolves on 2xx, raises HW_ERR_K8S_* otherwise. Never longer than timeoutMs. */
export function apiCall(call: ApiCall, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let token: string;
    try {
      token = call.token().trim();
    } catch (e) {
      reject(new HighwaterError('HW_ERR_K8S_NO_CONFIG', `${what}: cannot read the service account token: ${(e as Error).message}`, { cause: e }));
      return;
    }
    const url = new URL(call.path, call.server);
    const payload = Buffer.from(JSON.stringify(call.body));
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const fail = (e: HighwaterError): void => {
      clearTimeout(timer);
      reject(e);
    };
    const req = send(
      url,
      {
        method: call.method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json', 'content-length': payload.length },
        ...(url.protocol === 'https:' ? { ca: call.ca } : {}),
      },
      (res: IncomingMessage) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (text.length < MAX_ANSWER_BYTES) text += c;
        });
        res.on('error', (e) => fail(new HighwaterError('HW_ERR_K8S_UNREACHABLE', `${what}: ${e.message}`, { cause: e })));
        res.on('end', () => {
          clearTimeout(timer);
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve();
          const message = statusMessage(text);
          const code =
            status === 401 || status === 403 ? 'HW_ERR_K8S_FORBIDDEN' : status >= 400 && status < 500 ? 'HW_ERR_K8S_REJECTED' : 'HW_ERR_K8S_UNREACHABLE';
          reject(new HighwaterError(code, `${what}: HTTP ${status}${message ? `: ${message}` : ''}`));
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      fail(new HighwaterError('HW_ERR_K8S_UNREACHABLE', `${what}: timed out`));
    }, call.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => fail(new HighwaterError('HW_ERR_K8S_UNREACHABLE', `${what}: ${e.code ?? e.message}`, { cause: e })));
    req.end(payload);
  });
}

/** The one call the sidecar makes in a pod: create an events.k8s.io/v1 Event. */
export class InClusterEvents {
  constructor(private readonly target: Pick<InClusterTarget, 'server' | 'tokenPath' | 'ca'>) {}

  create(namespace: string, body: Record<string, unknown>, timeoutMs = 5000): Promise<void> {
    const { server, tokenPath, ca } = this.target;
    return apiCall(
      {
        server,
        token: () => readFileSync(tokenPath, 'utf8'),
        ca,
        method: 'POST',
        path: `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`,
        body,
        timeoutMs,
      },
      'posting the Event',
    );
  }
}
