// The chart's rendered Job, run on the real Docker engine the way a kubelet
// would (test/charts/kubelet.ts stands in for the kubelet: no API server or
// kubelet can run here). `helm template` of examples/kubernetes/job-pvc with
// images built from this repository; init containers in order, the native
// sidecar awaited through its startupProbe (/readyz), then the app with the
// pod's memory limit. Checks: app exit 53, the report on the PVC naming the
// line that grew, the app's termination message, metrics scraped from the
// sidecar during the run showing the growth and exactly one detection; a
// second run with Events off and no RBAC gives the same.
// Needs a Docker engine; run alone with `npx vitest run test/charts/kubelet-run.test.ts`.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildImages, docker, ensureEngine, readReport, reportsIn, repoRoot, stackStatus, uniqueName } from '../helpers/docker.js';
import { Pod } from './kubelet.js';
import { examplesDir } from './helm.js';
import { podSpecOf, template, validateObject, type K8sObject } from './render.js';

const engine = ensureEngine();
const stack = stackStatus();
const ready = engine.ok && stack.ok;
if (!engine.ok) console.warn(`skipping the kubelet-run test: ${engine.reason}`);
else if (!stack.ok) console.warn(`skipping the kubelet-run test: ${stack.reason}`);

const APP_IMAGE = 'highwater-demo-job-slim'; // bookworm + Python + NumPy; its own ENTRYPOINT is replaced by workload.command
const HW_IMAGE = 'highwater'; // the sidecar target: init container and sidecar
const LIMIT = '400Mi';
const MiB = 1024 * 1024;
const growScript = join(repoRoot, 'test/charts/fixtures/grow.py');
const growLine =
  readFileSync(growScript, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes('# HW-GROW-LINE')) + 1;

/**
 * examples/docker/build-images.sh needs a build context whose node_modules is
 * a directory. In a git worktree whose node_modules is a symlink to a shared
 * install, the context is made in a temporary directory with that install
 * bind-mounted (root only), which is what the Dockerfile expects to COPY.
 */
function buildFromThisTree(...targets: string[]): void {
  const nm = join(repoRoot, 'node_modules');
  if (!lstatSync(nm).isSymbolicLink()) return buildImages(...targets);
  const ctx = mkdtempSync(join(tmpdir(), 'hw-build-ctx-'));
  const files = ['Dockerfile', '.dockerignore', 'native', 'sidecar', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', '.ci'];
  for (const f of files) cpSync(join(repoRoot, f), join(ctx, f), { recursive: true, filter: (p) => !p.includes('/native/build') });
  cpSync(join(repoRoot, 'examples/docker'), join(ctx, 'examples/docker'), { recursive: true });
  mkdirSync(join(ctx, 'node_modules'));
  const target = readlinkSync(nm).startsWith('/') ? readlinkSync(nm) : join(repoRoot, readlinkSync(nm));
  execFileSync('mount', ['--bind', target, join(ctx, 'node_modules')]);
  try {
    execFileSync('bash', [join(ctx, 'examples/docker/build-images.sh'), ...targets], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 3_000_000 });
  } finally {
    execFileSync('umount', [join(ctx, 'node_modules')]);
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** The values of this test on top of the job-pvc example: local images, the slow-growing job from a ConfigMap. */
function testValues(events: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'hw-kubelet-values-'));
  const file = join(dir, 'values.yaml');
  writeFileSync(
    file,
    stringify({
      workload: {
        image: { repository: APP_IMAGE, tag: 'latest', pullPolicy: 'Never' },
        command: ['python3', '/work/grow.py'],
        args: [],
        resources: { requests: { cpu: '100m', memory: LIMIT }, limits: { memory: LIMIT } },
        volumes: [{ name: 'grow', configMap: { name: 'grow' } }],
        volumeMounts: [{ name: 'grow', mountPath: '/work', readOnly: true }],
      },
      highwater: { image: { repository: HW_IMAGE, tag: 'latest', pullPolicy: 'Never' } },
      events: { enabled: events },
    }),
  );
  return file;
}

interface Scrape {
  atMs: number;
  latencyMs: number;
  series: Map<string, number>;
}

/** Prometheus text → series (name with labels → value). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function sumOf(series: Map<string, number>, name: string): number {
  let s = 0;
  for (const [k, v] of series) if (k === name || k.startsWith(`${name}{`)) s += v;
  return s;
}

/** CPU share and largest RSS of the sidecar's Node process, from its own highwater_process_* series. */
function processUse(scrapes: Scrape[]): string {
  const cpu = (x: Scrape) => x.series.get('highwater_process_cpu_seconds_total');
  const a = scrapes[0];
  const b = scrapes[scrapes.length - 1];
  if (!a || !b || cpu(a) === undefined || cpu(b) === undefined || b.atMs === a.atMs) return 'n/a';
  const share = ((cpu(b)! - cpu(a)!) / ((b.atMs - a.atMs) / 1000)) * 100;
  const rss = Math.max(...scrapes.map((x) => x.series.get('highwater_process_resident_memory_bytes') ?? 0));
  return `${share.toFixed(1)}% of a core over ${((b.atMs - a.atMs) / 1000).toFixed(1)} s, RSS up to ${(rss / MiB).toFixed(1)} MiB`;
}

interface Stats {
  memBytes: number;
  cpuPercent: number;
}

async function stats(container: string): Promise<Stats> {
  const r = await docker(['stats', '--no-stream', '--format', '{{.MemUsage}};{{.CPUPerc}}', container]);
  const [mem, cpu] = r.stdout.trim().split(';');
  const m = /^([\d.]+)([KMG]i?B)/.exec(mem ?? '');
  const unit: Record<string, number> = { KiB: 1024, MiB: MiB, GiB: 1024 * MiB, kB: 1e3, MB: 1e6, GB: 1e9 };
  return { memBytes: m ? Number(m[1]) * (unit[m[2]!] ?? 1) : NaN, cpuPercent: Number((cpu ?? '').replace('%', '')) };
}

interface RunResult {
  appExit: number;
  sidecarExits: number[];
  reports: string[];
  appTerminationLog: string;
  scrapes: Scrape[];
  initMs: number;
  bundleBytes: number;
  sidecarStartMs: number;
  idle: Stats;
  watching: Stats;
  sidecarLogs: string;
  api: FakeApiRecord | undefined;
  podName: string;
  podUid: string;
  appFinishedMs: number;
}

async function runPod(events: boolean): Promise<RunResult> {
  const rendered = await template(['-f', join(examplesDir, 'job-pvc/values.yaml'), '-f', testValues(events)]);
  expect(rendered.code, rendered.stderr).toBe(0);
  for (const o of rendered.objects) validateObject(o);
  const job = rendered.objects.find((o: K8sObject) => o.kind === 'Job')!;
  expect(rendered.objects.some((o) => o.kind === 'Role')).toBe(events);
  const spec = podSpecOf(job);
  const prefix = uniqueName('hw-kubelet');
  const identity = { name: `${job.metadata.name}-x7k2p`, namespace: 'default', uid: '6f1c2a9e-0000-4000-8000-000000000053', nodeName: 'node-1' };
  const pod = new Pod({ prefix, spec, identity, configMaps: { grow: { 'grow.py': readFileSync(growScript, 'utf8') } } });
  const apiDir = mkdtempSync(join(tmpdir(), 'hw-kubelet-api-'));
  chmodSync(apiDir, 0o777);
  try {
    await pod.create(HW_IMAGE);
    if (events && watchPostsEvents) {
      // The FAKE API server runs in the pod's network namespace (the pod has
      // only loopback). A kubelet would mount a service-account token and the
      // sidecar would use the in-cluster config (https); the fake speaks
      // http, so the sidecar gets KUBECONFIG naming it instead.
      await pod.startHelper('apiserver', [
        '-v',
        `${join(repoRoot, 'test')}:/t:ro`,
        '-v',
        `${apiDir}:/api`,
        '--entrypoint',
        '/opt/highwater/node/bin/node',
        HW_IMAGE,
        '/t/charts/fixtures/fake-apiserver-in-pod.mjs',
        '/api',
      ]);
      const end = Date.now() + 30_000;
      while (!existsSync(join(apiDir, 'kubeconfig')) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      expect(existsSync(join(apiDir, 'kubeconfig'))).toBe(true);
      pod.extraArgs.highwater = ['-v', `${apiDir}:/var/run/fake-api:ro`, '-e', 'KUBECONFIG=/var/run/fake-api/kubeconfig'];
    }
    let initMs = 0;
    let sidecarStartMs = 0;
    const sidecars: unknown[] = [];
    let sidecarName = '';
    let metricsPort = 0;
    for (const c of spec.initContainers) {
      if (c.restartPolicy === 'Always') {
        sidecarStartMs = await pod.startSidecar(c);
        sidecars.push(c);
        sidecarName = `${prefix}-${c.name}`;
        metricsPort = c.ports.find((p: { name: string }) => p.name === 'hw-metrics').containerPort;
      } else initMs += await pod.runInit(c);
    }
    const bundleVol = pod.volumes.get('highwater-bundle')!;
    const du = await docker(['run', '--rm', '--network', 'none', '-v', `${bundleVol}:/b:ro`, '--entrypoint', 'du', HW_IMAGE, '-sb', '/b']);
    const bundleBytes = Number(du.stdout.split(/\s/)[0]);
    await new Promise((r) => setTimeout(r, 2000)); // let Node's start-up CPU settle before the idle sample
    const idle = await stats(sidecarName);

    // Prometheus stand-in: a scraper in the pod's network namespace, every 200 ms.
    await pod.startHelper('scraper', [
      '-v',
      `${join(repoRoot, 'test/charts/fixtures')}:/f:ro`,
      '-v',
      `${apiDir}:/out`,
      '--entrypoint',
      '/opt/highwater/node/bin/node',
      HW_IMAGE,
      '/f/scraper-in-pod.mjs',
      '/out',
      String(metricsPort),
      '200',
    ]);
    const app = await pod.startMain(spec.containers[0]);
    const watchingP = new Promise((r) => setTimeout(r, 1500)).then(() => stats(sidecarName));
    const appExit = await pod.wait(app);
    const watching = await watchingP;
    // Scrapes after the app ended, before the kubelet stops the sidecar.
    await new Promise((res) => setTimeout(res, 1500));
    await docker(['stop', '-t', '5', `${prefix}-scraper`]);
    const scrapes: Scrape[] = readFileSync(join(apiDir, 'scrapes.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { atMs: number; latencyMs: number; status: number; lines: string[] })
      .filter((x) => x.status === 200)
      .map((x) => ({ atMs: x.atMs, latencyMs: x.latencyMs, series: parseMetrics(x.lines.join('\n')) }));
    const sidecarExits = await pod.stopSidecars(sidecars);
    const logs = await docker(['logs', sidecarName]);

    const out = mkdtempSync(join(tmpdir(), 'hw-kubelet-reports-'));
    chmodSync(out, 0o777);
    await docker(['cp', `${sidecarName}:/reports/.`, out]);
    const finished = (await docker(['inspect', '-f', '{{.State.FinishedAt}}', app])).stdout.trim();
    if (events && watchPostsEvents) await docker(['stop', '-t', '5', `${prefix}-apiserver`]);
    const apiFile = join(apiDir, 'events.json');
    const api = existsSync(apiFile) ? (JSON.parse(readFileSync(apiFile, 'utf8')) as FakeApiRecord) : undefined;
    const appLog = pod.containers.find((c) => c.name === spec.containers[0].name)!.terminationLog;
    return {
      appExit,
      sidecarExits,
      reports: reportsIn(out),
      appTerminationLog: readFileSync(appLog, 'utf8'),
      scrapes,
      initMs,
      bundleBytes,
      sidecarStartMs,
      idle,
      watching,
      sidecarLogs: logs.stdout + logs.stderr,
      api,
      podName: identity.name,
      podUid: identity.uid,
      appFinishedMs: Date.parse(finished),
    };
  } finally {
    await pod.delete();
  }
}

/**
 * `highwater watch` posts Events (k8s-sidecar's part) once HIGHWATER_EVENTS
 * is read by the watch command; checked against the fake API server then.
 */
const watchPostsEvents = (() => {
  try {
    return execFileSync('grep', ['-rl', 'HIGHWATER_EVENTS', join(repoRoot, 'sidecar/src/cli')], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
})();

interface FakeApiRecord {
  events: Array<Record<string, any>>;
  creates: Array<{ namespace: string; body: unknown; errors: string[]; status: number }>;
}

/** The shim writes the app container's termination message (k8s-sidecar's part); checked once it exists. */
const shimWritesTerminationLog = (() => {
  try {
    return execFileSync('grep', ['-rl', 'termination', join(repoRoot, 'native/shim')], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
})();

function expectReportNamesGrowLine(dirs: string[]): void {
  expect(dirs.length).toBeGreaterThanOrEqual(1);
  const r = readReport(dirs[dirs.length - 1]!);
  expect(r.trigger).toBe('oom');
  const frames = r.stacks[0]?.frames ?? [];
  const own = [...frames].reverse().find((f) => f.file.endsWith('grow.py'));
  expect(own, JSON.stringify(r.stacks.slice(0, 2))).toBeDefined();
  expect(own!.line).toBe(growLine);
  expect(own!.function).toBe('grow_step');
  expect(r.peakBytes).toBeGreaterThan(100 * MiB);
  expect(r.peakBytes).toBeLessThan(400 * MiB);
}

describe.skipIf(!ready)('the rendered Job on Docker, run the way a kubelet would', () => {
  beforeAll(() => {
    // HIGHWATER_KUBELET_SKIP_BUILD=1 reuses the images already built (iterating on this test only).
    if (process.env.HIGHWATER_KUBELET_SKIP_BUILD !== '1') buildFromThisTree('sidecar', 'job-slim');
  }, 3_000_000); // a cold build takes many minutes on a loaded 2-core machine

  let first: RunResult | undefined;
  let eventDelayMs: number | undefined;
  let detectionDelayMs: number | undefined;
  afterAll(() => {
    if (!first) return;
    const lat = first.scrapes.map((s) => s.latencyMs).sort((a, b) => a - b);
    console.log(
      [
        'kubelet-run measurements (2 shared cores, loaded machine, vfs storage driver):',
        `  init container copy: ${first.initMs} ms (docker run of the init container, start to exit), bundle ${(first.bundleBytes / MiB).toFixed(2)} MiB`,
        `  sidecar start to startupProbe success: ${first.sidecarStartMs} ms`,
        `  sidecar idle: ${(first.idle.memBytes / MiB).toFixed(1)} MiB, ${first.idle.cpuPercent}% CPU; watching: ${(first.watching.memBytes / MiB).toFixed(1)} MiB, ${first.watching.cpuPercent}% CPU`,
        `  sidecar by its own metrics over the run (scraped every 200 ms): ${processUse(first.scrapes)}`,
        `  detection counted (highwater_last_oom_detection_timestamp_seconds) minus the app container's exit: ${detectionDelayMs ?? 'n/a'} ms`,
        `  Event: eventTime minus the app container's exit: ${eventDelayMs ?? 'n/a'} ms`,
        `  scrape latency (inside the pod, ${lat.length} scrapes): median ${lat[lat.length >> 1]?.toFixed(1)} ms, max ${lat[lat.length - 1]?.toFixed(1)} ms`,
      ].join('\n'),
    );
  });

  it('Events on: app exits 53, the report on the PVC names the line, metrics show growth and one detection', async () => {
    const r = (first = await runPod(true));
    expect(r.appExit, r.sidecarLogs).toBe(53);
    expect(r.sidecarExits).toEqual([0]);
    expectReportNamesGrowLine(r.reports);

    // Metrics during the run: tracked bytes grew, one detection counted.
    const tracked = r.scrapes.map((s) => sumOf(s.series, 'highwater_tracked_bytes'));
    expect(r.scrapes.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...tracked) - Math.min(...tracked)).toBeGreaterThan(64 * MiB);
    const detections = sumOf(r.scrapes[r.scrapes.length - 1]!.series, 'highwater_oom_detections_total');
    expect(detections).toBe(1);
    const detectedAt = r.scrapes[r.scrapes.length - 1]!.series.get('highwater_last_oom_detection_timestamp_seconds');
    if (detectedAt !== undefined) detectionDelayMs = Math.round(detectedAt * 1000 - r.appFinishedMs);
    expect(sumOf(r.scrapes[0]!.series, 'highwater_oom_detections_total')).toBe(0);
    expect(r.scrapes.some((s) => s.series.get('highwater_memory_limit_bytes') === 400 * MiB)).toBe(true);

    if (watchPostsEvents) {
      // One valid Event: the fake enforces the events.k8s.io/v1 rules and records every attempt.
      expect(
        r.api?.creates.map((c) => c.errors),
        r.sidecarLogs,
      ).toEqual([[]]);
      const ev = r.api!.events[0]!;
      expect(ev.reason).toBe('HighwaterOOM');
      expect(ev.type).toBe('Warning');
      // regarding: the pod from the downward API, the app container from HIGHWATER_APP_CONTAINER.
      expect(ev.regarding).toEqual({ apiVersion: 'v1', kind: 'Pod', name: r.podName, namespace: 'default', uid: r.podUid, fieldPath: 'spec.containers{app}' });
      expect(ev.note).toContain(`grow.py:${growLine}`);
      eventDelayMs = Date.parse(ev.eventTime) - r.appFinishedMs;
    } else console.warn('kubelet-run: highwater watch does not post Events yet (k8s-sidecar); the Event is not checked');

    if (shimWritesTerminationLog) {
      // Written by the shim inside the app container (the sidecar cannot reach that file).
      expect(Buffer.byteLength(r.appTerminationLog)).toBeLessThanOrEqual(4096);
      expect(r.appTerminationLog).toMatch(
        new RegExp(`^highwater: out of memory \\(low-available\\): peak .* of limit 400\\.0 MiB at grow\\.py:${growLine} in grow_step\n`),
      );
    } else console.warn('kubelet-run: the shim does not write the termination log yet (k8s-sidecar); not checked');
  }, 600_000); // each docker run is slow on a loaded machine

  it('Events off, no RBAC: still 53 and the report', async () => {
    const r = await runPod(false);
    expect(r.appExit, r.sidecarLogs).toBe(53);
    expectReportNamesGrowLine(r.reports);
    expect(r.api?.creates ?? []).toEqual([]);
  }, 600_000);
});

// The files this test relies on exist (a renamed fixture would make the test skip nothing silently).
it('fixtures', () => {
  expect(existsSync(growScript)).toBe(true);
  expect(growLine).toBeGreaterThan(0);
});
