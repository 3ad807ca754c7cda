// The sidecar's own Event path in a pod (kubernetes/in-cluster.ts: node:https,
// no client-node), against the FAKE API server over HTTPS with a CA of its
// own, as a pod sees the real one (no API server can run here). The
// service-account directory is a temporary one with the same files the
// kubelet mounts (token, ca.crt).
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { factsOf, oomEvent, type PodRef } from '../../sidecar/src/kubernetes/event.js';
import { lightEventSink, openEventSink } from '../../sidecar/src/kubernetes/event-sink.js';
import { InClusterEvents, inClusterTarget, inPod } from '../../sidecar/src/kubernetes/in-cluster.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { selfSignedCert, startFakeApiServer, type FakeApiServer } from './fake-api-server.js';

const MiB = 1024 * 1024;
const pod: PodRef = { name: 'etl-4mz8q', namespace: 'batch', uid: '', node: 'node-1', container: 'app' };
const report = {
  version: 1,
  trigger: 'oom',
  oomReason: 'low-available',
  peakBytes: 300 * MiB,
  timeMs: 0,
  memory: { limitBytes: 400 * MiB },
  stacks: [{ bytes: 300 * MiB, frames: [{ file: '/app/etl.py', line: 12, function: 'load', code: 'rows = list(reader)' }] }],
} as unknown as ReportJson;
const body = (): Record<string, unknown> => oomEvent(pod, factsOf(report, '/reports/r/index.html'), Date.now());

/** A service-account directory as the kubelet mounts it. */
function serviceAccount(dir: string, token: string, caCert: string | undefined): string {
  const sa = join(dir, 'serviceaccount');
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), token + '\n'); // trailing newline: stripped
  if (caCert !== undefined) writeFileSync(join(sa, 'ca.crt'), caCert);
  writeFileSync(join(sa, 'namespace'), pod.namespace);
  return sa;
}

const podEnv = (f: FakeApiServer): NodeJS.ProcessEnv => ({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(f.url).port });
const codeOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: unknown) => (isHighwaterError(e) ? e.code : String(e)),
  );

describe('Events from inside a pod without client-node', () => {
  const fakes: FakeApiServer[] = [];
  afterEach(async () => {
    for (const f of fakes.splice(0)) await f.close();
  });

  it('posts a valid Event over HTTPS verified against ca.crt, with the token read at every call (rotation)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-sa-'));
    const served = selfSignedCert(dir, 'server');
    const f = await startFakeApiServer('token-1', served);
    fakes.push(f);
    const sa = serviceAccount(dir, 'token-1', served.cert);
    const target = inClusterTarget(podEnv(f), sa);
    expect(target.server).toBe(`https://127.0.0.1:${new URL(f.url).port}`);
    const sink = new InClusterEvents(target);
    await sink.create(pod.namespace, body());
    expect(f.creates.map((c) => c.errors)).toEqual([[]]);
    expect(f.events[0]).toMatchObject({ reason: 'HighwaterOOM', regarding: { kind: 'Pod', name: pod.name, namespace: 'batch' } });
    expect(f.requests).toEqual(['POST /apis/events.k8s.io/v1/namespaces/batch/events']);

    // The kubelet rotates the projected token: the next call uses the new one.
    writeFileSync(join(sa, 'token'), 'token-2');
    expect(await codeOf(sink.create(pod.namespace, body()))).toBe('HW_ERR_K8S_FORBIDDEN'); // the fake still wants token-1
    const f2 = await startFakeApiServer('token-2', served);
    fakes.push(f2);
    await new InClusterEvents(inClusterTarget(podEnv(f2), sa)).create(pod.namespace, body());
    expect(f2.events).toHaveLength(1);
  });

  it('refuses a server whose certificate is not from the cluster CA (never skips verification)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-sa-'));
    const served = selfSignedCert(dir, 'server');
    const other = selfSignedCert(dir, 'other');
    const f = await startFakeApiServer('t', served);
    fakes.push(f);
    const wrongCa = inClusterTarget(podEnv(f), serviceAccount(dir, 't', other.cert));
    const err = await new InClusterEvents(wrongCa).create(pod.namespace, body()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'HW_ERR_K8S_UNREACHABLE' });
    expect((err as Error).message).toMatch(/^posting the Event: (SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/);
    // Without ca.crt the system CAs are used: the self-signed fake is refused too.
    const noCa = inClusterTarget(podEnv(f), serviceAccount(mkdtempSync(join(tmpdir(), 'hw-sa-')), 't', undefined));
    expect(noCa.ca).toBeUndefined();
    expect(await codeOf(new InClusterEvents(noCa).create(pod.namespace, body()))).toBe('HW_ERR_K8S_UNREACHABLE');
    expect(f.events).toHaveLength(0);
  });

  it('says why with the same codes as client-node: no token, RBAC, invalid body, 5xx, hanging, nobody listening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-sa-'));
    const served = selfSignedCert(dir, 'server');
    const f = await startFakeApiServer('t', served);
    fakes.push(f);
    const sa = serviceAccount(dir, 't', served.cert);
    const sink = new InClusterEvents(inClusterTarget(podEnv(f), sa));

    expect(() => inClusterTarget({}, sa)).toThrow(expect.objectContaining({ code: 'HW_ERR_K8S_NO_CONFIG' }));
    expect(() => inClusterTarget(podEnv(f), join(dir, 'nothing-mounted'))).toThrow(
      /no service account token at .*nothing-mounted\/token \(automountServiceAccountToken: false\?\)/,
    );
    expect(() => inClusterTarget({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: 'https' }, sa)).toThrow(/not a port/);
    expect(inClusterTarget({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }, sa).server).toBe('https://[fd00::1]:443');

    f.mode = 'forbidden';
    await expect(sink.create(pod.namespace, body())).rejects.toThrow(
      /^posting the Event: HTTP 403: events.events.k8s.io is forbidden: User "system:serviceaccount:batch:default" cannot create/,
    );
    f.mode = 'ok';
    const invalid = { ...body(), note: 'n'.repeat(1025) };
    const rejected = await sink.create(pod.namespace, invalid).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(rejected).toMatchObject({ code: 'HW_ERR_K8S_REJECTED' });
    expect((rejected as Error).message).toMatch(/HTTP 422: .*note: Too long/);
    f.mode = 'error500';
    expect(await codeOf(sink.create(pod.namespace, body()))).toBe('HW_ERR_K8S_UNREACHABLE');
    f.mode = 'hang';
    const t0 = Date.now();
    await expect(sink.create(pod.namespace, body(), 300)).rejects.toThrow(/^posting the Event: timed out$/);
    expect(Date.now() - t0).toBeLessThan(3000);
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const down = new InClusterEvents(inClusterTarget({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(closed) }, sa));
    await expect(down.create(pod.namespace, body())).rejects.toThrow(/^posting the Event: ECONNREFUSED$/);
    expect(f.events).toHaveLength(0);
  });

  it('is the sink in a pod without KUBECONFIG; client-node is loaded only with KUBECONFIG or outside a pod', async () => {
    expect(inPod({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' })).toBe(true);
    expect(lightEventSink({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' })).toBe(true);
    expect(lightEventSink({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443', KUBECONFIG: '/k' })).toBe(false);
    expect(lightEventSink({})).toBe(false);
    // In a pod whose token is not mounted, opening says so (the sidecar logs it once at start).
    await expect(openEventSink({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' })).rejects.toMatchObject({
      code: 'HW_ERR_K8S_NO_CONFIG',
    });
  });
});
