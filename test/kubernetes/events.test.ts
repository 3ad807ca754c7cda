// The HighwaterOOM Event: built by kubernetes/event.ts, posted through the
// real @kubernetes/client-node (kubernetes/client.ts) to a FAKE API server on
// loopback (no real API server can run here) that enforces the
// events.k8s.io/v1 validation rules.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { EventsClient, loadKubeConfig } from '../../sidecar/src/kubernetes/client.js';
import { factsOf, microTime, oomEvent, oomNote, podFromEnv, rowOf, truncateUtf8, wantsEvent, type PodRef } from '../../sidecar/src/kubernetes/event.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { selfSignedCert, startFakeApiServer, validateEvent, type FakeApiServer } from './fake-api-server.js';

const MiB = 1024 * 1024;
const pod: PodRef = { name: 'train-job-x7k2p', namespace: 'ml', uid: '6b1c7d3e-0f9a-4c55-9e1d-1a2b3c4d5e6f', node: 'node-3', container: 'app' };

function report(code = 'return np.ones(n)'): ReportJson {
  return {
    version: 1,
    trigger: 'oom',
    oomReason: 'low-available',
    oomAllocation: null,
    peakBytes: 350 * MiB,
    timeMs: 1_700_000_000_000,
    process: { pid: 7, argv: ['python', 'job.py'], python: '3.11' },
    memory: { source: 'cgroup-v2', limitBytes: 400 * MiB, workingSetBytes: 390 * MiB, availableBytes: 10 * MiB, swapBytes: 0 },
    stacks: [
      {
        bytes: 350 * MiB,
        frames: [
          { file: '/app/job.py', line: 31, function: 'load_batch', code },
          { file: '/usr/lib/python3/dist-packages/numpy/core/numeric.py', line: 191, function: 'ones', code: 'a = empty(shape, dtype, order)' },
        ],
      },
    ],
  } as unknown as ReportJson;
}

describe('HighwaterOOM Event', () => {
  const fakes: FakeApiServer[] = [];
  afterEach(async () => {
    for (const f of fakes.splice(0)) await f.close();
  });
  const fake = async (): Promise<FakeApiServer> => {
    const f = await startFakeApiServer();
    fakes.push(f);
    return f;
  };
  const client = (f: FakeApiServer, token = f.token) => new EventsClient(loadKubeConfig({}, { server: f.url, token, skipTLSVerify: true }));

  it('is accepted by the fake with every required field, regarding the pod, the note naming peak, limit, line and report', async () => {
    const f = await fake();
    const where = '/reports/20261129-184500-oom/index.html';
    const body = oomEvent(pod, factsOf(report(), where), Date.UTC(2026, 10, 29, 18, 45, 0, 123));
    await client(f).create(pod.namespace, body);
    expect(f.creates.map((c) => c.errors)).toEqual([[]]);
    const ev = f.events[0]!;
    expect(ev).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'ml' },
      eventTime: '2026-11-29T18:45:00.123000Z',
      reportingController: 'highwater.dev/watch',
      reportingInstance: 'highwater.dev/watch-node-3',
      action: 'OOMDetected',
      reason: 'HighwaterOOM',
      type: 'Warning',
      regarding: { apiVersion: 'v1', kind: 'Pod', name: 'train-job-x7k2p', namespace: 'ml', uid: pod.uid, fieldPath: 'spec.containers{app}' },
    });
    expect(ev.metadata.name).toMatch(/^train-job-x7k2p\.[0-9a-f]+$/);
    // The line is the job's own frame, not numpy's.
    expect(ev.note).toBe(`out of memory (low-available): peak 350.0 MiB of limit 400.0 MiB at job.py:31 return np.ones(n); report: ${where}`);
    for (const k of ['deprecatedCount', 'deprecatedSource', 'deprecatedFirstTimestamp', 'deprecatedLastTimestamp', 'series']) expect(ev[k]).toBeUndefined();
    // Read back as collect kubernetes does.
    expect(rowOf(ev)).toMatchObject({
      namespace: 'ml',
      pod: 'train-job-x7k2p',
      container: 'app',
      peakBytes: 350 * MiB,
      topLine: 'job.py:31 return np.ones(n)',
      where,
    });
  });

  it('a killed post-mortem gets the same Event with action Killed, a note that says so, and the trigger annotated', async () => {
    const f = await fake();
    const killed = { ...report(), trigger: 'killed', oomReason: null } as unknown as ReportJson;
    const where = '/reports/20261129-184500-killed/index.html';
    const facts = factsOf(killed, where);
    expect(facts.trigger).toBe('killed');
    await client(f).create(pod.namespace, oomEvent(pod, facts, Date.now()));
    expect(f.creates.map((c) => c.errors)).toEqual([[]]);
    const ev = f.events[0]!;
    expect(ev).toMatchObject({ reason: 'HighwaterOOM', action: 'Killed', type: 'Warning', metadata: { annotations: { 'highwater.dev/trigger': 'killed' } } });
    expect(ev.note).toBe(
      `killed (SIGKILL, most likely the kernel OOM killer) before highwater could act: peak 350.0 MiB of limit 400.0 MiB at job.py:31 return np.ones(n); report: ${where}`,
    );
    // An OOM caught keeps its action and says which trigger it was.
    const oom = oomEvent(pod, factsOf(report(), where), Date.now());
    expect(oom.action).toBe('OOMDetected');
    expect((oom.metadata as { annotations: Record<string, string> }).annotations['highwater.dev/trigger']).toBe('oom');
    const triggers = ['oom', 'killed', 'exit', 'signal', 'api', 'request'];
    expect(triggers.filter((t) => wantsEvent(t, true))).toEqual(['oom', 'killed']); // post-mortems
    expect(triggers.filter((t) => wantsEvent(t, false))).toEqual(['oom']); // dumps
  });

  it('keeps the note within 1024 bytes, cut on a UTF-8 boundary, and the report path whole', async () => {
    const f = await fake();
    const longCode = 'x = "' + 'é€😀'.repeat(400) + '"';
    const where = '/reports/20261129-184500-oom/index.html';
    const body = oomEvent(pod, factsOf(report(longCode), where), Date.now());
    const note = body.note as string;
    expect(Buffer.byteLength(note)).toBeLessThanOrEqual(1024);
    expect(Buffer.byteLength(note)).toBeGreaterThan(1000);
    expect(note).not.toContain('\uFFFD');
    expect(note.endsWith(`; report: ${where}`)).toBe(true);
    await client(f).create(pod.namespace, body);
    expect(f.creates[0]!.errors).toEqual([]);
    // truncateUtf8 never splits a character.
    expect(truncateUtf8('aé', 2)).toBe('a');
    expect(truncateUtf8('a😀b', 4)).toBe('a');
    expect(truncateUtf8('a😀b', 5)).toBe('a😀');
    expect(microTime(0)).toBe('1970-01-01T00:00:00.000000Z');
    expect(oomNote({ reason: 'swap', peakBytes: 1024, limitBytes: 0, topLine: 't.py:1 x', where: 'w' })).toBe(
      'out of memory (swap): peak 1.0 KiB at t.py:1 x; report: w',
    );
  });

  it('the fake enforces the rules: a broken Event is refused with 422 and the client says HW_ERR_K8S_REJECTED', async () => {
    const f = await fake();
    const good = oomEvent(pod, factsOf(report(), '/r'), Date.now());
    expect(validateEvent(good, 'ml')).toEqual([]);
    const broken: Array<[string, Record<string, unknown>, RegExp]> = [
      ['note of 1025 bytes', { ...good, note: 'n'.repeat(1025) }, /note: Too long/],
      ['no reportingController', { ...good, reportingController: undefined }, /reportingController: Required/],
      ['deprecatedCount set', { ...good, deprecatedCount: 3 }, /deprecatedCount: Forbidden/],
      ['regarding another namespace', { ...good, regarding: { kind: 'Pod', name: 'p', namespace: 'other' } }, /regarding.namespace/],
      ['millisecond eventTime', { ...good, eventTime: new Date().toISOString() }, /eventTime/],
      ['reason over 128 characters', { ...good, reason: 'R'.repeat(129) }, /reason: Too long/],
    ];
    for (const [what, body, why] of broken) {
      const err = await client(f)
        .create('ml', body)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isHighwaterError(err, 'HW_ERR_K8S_REJECTED'), what).toBe(true);
      expect((err as Error).message, what).toMatch(why);
    }
    expect(f.events).toHaveLength(0);
  });

  it('without API access the error says why with a stable code: no config, bad token, RBAC, API down, API hanging', async () => {
    const f = await fake();
    const body = oomEvent(pod, factsOf(report(), '/r'), Date.now());
    const codeOf = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: unknown) => (isHighwaterError(e) ? e.code : String(e)),
      );

    const home = mkdtempSync(join(tmpdir(), 'hw-home-'));
    const prevHome = process.env.HOME;
    process.env.HOME = home; // no ~/.kube/config
    try {
      expect(() => loadKubeConfig({})).toThrow(expect.objectContaining({ code: 'HW_ERR_K8S_NO_CONFIG' }));
      // In a pod (service env set) but the token is not mounted.
      expect(() => loadKubeConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' })).toThrow(/no service account token/);
    } finally {
      process.env.HOME = prevHome;
    }
    // KUBECONFIG wins, and a wrong token is refused by the API server.
    const kubeconfig = join(home, 'config');
    writeFileSync(kubeconfig, f.kubeconfig());
    const prevKc = process.env.KUBECONFIG;
    process.env.KUBECONFIG = kubeconfig;
    try {
      expect(await codeOf(new EventsClient(loadKubeConfig(process.env)).create('ml', body))).toBe('ok');
    } finally {
      if (prevKc === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = prevKc;
    }
    expect(await codeOf(client(f, 'wrong').create('ml', body))).toBe('HW_ERR_K8S_FORBIDDEN');
    f.mode = 'forbidden';
    expect(await codeOf(client(f).create('ml', body))).toBe('HW_ERR_K8S_FORBIDDEN');
    // The API server's own words, from its Status object.
    await expect(client(f).create('ml', body)).rejects.toThrow(
      /^posting the Event: HTTP 403: events.events.k8s.io is forbidden: User "system:serviceaccount:ml:default" cannot create/,
    );
    f.mode = 'error500';
    expect(await codeOf(client(f).create('ml', body))).toBe('HW_ERR_K8S_UNREACHABLE');
    f.mode = 'hang';
    const t0 = Date.now();
    expect(await codeOf(client(f).create('ml', body, 300))).toBe('HW_ERR_K8S_UNREACHABLE');
    expect(Date.now() - t0).toBeLessThan(3000);
    // A port nobody listens on.
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
    const down = new EventsClient(loadKubeConfig({}, { server: `http://127.0.0.1:${closed}`, token: 't', skipTLSVerify: true }));
    expect(await codeOf(down.create('ml', body))).toBe('HW_ERR_K8S_UNREACHABLE');
    expect(f.events).toHaveLength(1);
  });

  it('over HTTPS, verified against the cluster CA file as in a pod; a certificate from another CA is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-tls-'));
    const served = selfSignedCert(dir, 'server');
    selfSignedCert(dir, 'other');
    const f = await startFakeApiServer('tls-token', served);
    fakes.push(f);
    expect(f.url).toMatch(/^https:/);
    const body = oomEvent(pod, factsOf(report(), '/r'), Date.now());
    await new EventsClient(loadKubeConfig({}, { server: f.url, token: 'tls-token', caFile: join(dir, 'server.crt') })).create('ml', body);
    expect(f.events).toHaveLength(1);
    const wrongCa = new EventsClient(loadKubeConfig({}, { server: f.url, token: 'tls-token', caFile: join(dir, 'other.crt') }));
    await expect(wrongCa.create('ml', body)).rejects.toMatchObject({ code: 'HW_ERR_K8S_UNREACHABLE' });
    expect(f.events).toHaveLength(1);
  });

  it('reads the pod from the downward-API variables', () => {
    expect(podFromEnv({})).toBeUndefined();
    expect(podFromEnv({ HIGHWATER_POD_NAME: 'p' })).toBeUndefined();
    expect(podFromEnv({ HIGHWATER_POD_NAME: 'p', HIGHWATER_POD_NAMESPACE: 'n', HIGHWATER_POD_UID: 'u', HIGHWATER_NODE_NAME: 'k' })).toEqual({
      name: 'p',
      namespace: 'n',
      uid: 'u',
      node: 'k',
      container: '',
    });
  });
});
