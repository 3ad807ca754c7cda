// The sidecar and the app container, without Kubernetes (no API server can
// run here): a real Python job under the shim in a real memory cgroup (the
// "app container"), a real `highwater watch` outside it sharing only the run
// dir (the "sidecar"), a file standing in for /dev/termination-log, a FAKE
// API server (fake-api-server.ts, validating Events) and a FAKE object store
// on loopback for --upload-url.
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { humanBytes } from '../../sidecar/src/report/format.js';
import { topLine } from '../../sidecar/src/watcher/summary.js';
import { type TestCgroup, cgroupUnavailable, makeCgroup } from '../helpers/cgroup.js';
import { MiB, bytesAtLine, fixtures, freshDir, lineOf, pythonWithNumpy, readReport, repoRoot } from '../helpers/cli.js';
import { startWatch, waitForReports } from '../watcher/processes.js';
import { startFakeApiServer, type FakeApiServer } from './fake-api-server.js';

const leakPy = join(fixtures, 'python', 'leak.py');
const leakLine = lineOf(leakPy, 'leak line');
const unavailable = cgroupUnavailable();

/** The job in its own memory cgroup under the shim, writing to runDir; resolves with its exit. */
function appContainer(cg: TestCgroup, runDir: string, termLog: string): Promise<{ code: number | null; stderr: string; ms: number }> {
  const env = childEnv({ ...process.env, HIGHWATER_TERMINATION_LOG: termLog }, bundlePaths(repoRoot), loadConfig({}, {}), runDir, 'run', process.execPath);
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', `${cg.enterPrefix} '${pythonWithNumpy()}' '${leakPy}'`], { cwd: repoRoot, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr, ms: Date.now() - t0 }));
  });
}

async function fakeStore(): Promise<{ base: string; puts: Map<string, string>; server: Server }> {
  const puts = new Map<string, string>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      puts.set(req.url!, body);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, puts, server };
}

describe.skipIf(unavailable !== null)(`sidecar and app container${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const cgroup = (bytes: number): TestCgroup => {
    const made = makeCgroup(bytes);
    if (typeof made === 'string') throw new Error(made);
    cleanups.push(() => made.remove());
    return made;
  };
  /** `highwater watch --events` against the FAKE API server, serving metrics, for a pod in namespace ml. */
  const watchWithEvents = async (fake: FakeApiServer, dir: string, runDir: string, out: string, pod: string) => {
    writeFileSync(join(dir, 'kubeconfig'), fake.kubeconfig());
    const w = startWatch(runDir, out, ['--metrics-port', '0', '--warn-after', '0', '--events'], {
      KUBECONFIG: join(dir, 'kubeconfig'),
      HIGHWATER_POD_NAME: pod,
      HIGHWATER_POD_NAMESPACE: 'ml',
    });
    cleanups.push(() => w.child.kill('SIGKILL'));
    await w.waitFor(/metrics at (http:\S+)/);
    return { w, metricsUrl: /metrics at (http:\S+)/.exec(w.stderr())![1]! };
  };

  it('OOM: exit 53, the termination message from the shim, one valid Event and the upload from the sidecar, all naming the same line', async () => {
    const fake: FakeApiServer = await startFakeApiServer();
    cleanups.push(() => fake.close());
    const store = await fakeStore();
    cleanups.push(() => (store.server.closeAllConnections(), store.server.close()));
    const dir = freshDir('hw-k8s-');
    const runDir = join(dir, 'run');
    const out = join(dir, 'reports');
    mkdirSync(runDir, { mode: 0o700 });
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, fake.kubeconfig());
    const termLog = join(dir, 'termination-log');
    writeFileSync(termLog, ''); // the kubelet mounts an empty file

    const w = startWatch(
      runDir,
      out,
      ['--metrics-port', '0', '--warn-after', '0', '--events', '--upload-url', `${store.base}/b/{namespace}/{pod}/{report}/{file}?sig=SECRET`],
      {
        KUBECONFIG: kubeconfig,
        HIGHWATER_POD_NAME: 'train-x7k2p',
        HIGHWATER_POD_NAMESPACE: 'ml',
        HIGHWATER_POD_UID: '0f4e2a51-0000-4000-8000-000000000001',
        HIGHWATER_NODE_NAME: 'node-3',
        HIGHWATER_APP_CONTAINER: 'app',
        HIGHWATER_LOG_FORMAT: 'json',
      },
    );
    cleanups.push(() => w.child.kill('SIGKILL'));
    await w.waitFor(/metrics at (http:\S+)/);
    const metricsUrl = /metrics at (http:\S+)/.exec(w.stderr())![1]!;

    const app = await appContainer(cgroup(450 * MiB), runDir, termLog);
    expect(app.code, app.stderr).toBe(53);

    const [reportDir] = await waitForReports(out, 1, 20_000);
    expect(reportDir, w.stderr()).toBeDefined();
    const report = readReport(reportDir!);
    expect(report.trigger).toBe('oom');
    expect(bytesAtLine(report, 'leak.py', leakLine)).toBeGreaterThan(200 * MiB);
    expect(topLine(report)).toMatch(new RegExp(`^leak\\.py:${leakLine} `));

    // The termination message, written by the shim in the app container.
    const msg = readFileSync(termLog, 'utf8');
    expect(Buffer.byteLength(msg)).toBeLessThanOrEqual(4096);
    const dump = /report: highwater renders it from (\S+)\n/.exec(msg)?.[1];
    expect(msg, msg).toContain(
      `highwater: out of memory (low-available): peak ${humanBytes(report.peakBytes)} of limit 450.0 MiB at leak.py:${leakLine} in leak_step\n`,
    );
    expect(dump).toMatch(new RegExp(`^${runDir}/hw-\\d+-\\d+\\.dump$`));

    // One valid Event, regarding the pod, naming the same line and where the report is.
    for (const end = Date.now() + 10_000; fake.events.length === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
    expect(
      fake.creates.map((c) => c.errors),
      w.stderr(),
    ).toEqual([[]]);
    const ev = fake.events[0]!;
    expect(ev.regarding).toEqual({
      apiVersion: 'v1',
      kind: 'Pod',
      name: 'train-x7k2p',
      namespace: 'ml',
      uid: '0f4e2a51-0000-4000-8000-000000000001',
      fieldPath: 'spec.containers{app}',
    });
    expect(ev.note).toContain(`out of memory (low-available): peak ${humanBytes(report.peakBytes)} of limit 450.0 MiB at ${topLine(report)}`);
    const uploadedIndex = `${store.base}/b/ml/train-x7k2p/${reportDir!.split('/').pop()}/index.html`;
    expect(ev.note).toContain(`report: ${join(reportDir!, 'index.html')}; upload: ${uploadedIndex}`);
    expect(ev.note).not.toContain('SECRET');

    // The upload: every report file, byte for byte.
    for (const end = Date.now() + 10_000; ![...store.puts.keys()].some((k) => k.includes('index.html')) && Date.now() < end;)
      await new Promise((r) => setTimeout(r, 100));
    const files = readdirSync(reportDir!).sort();
    expect([...store.puts.keys()].map((k) => k.split('?')[0]!.split('/').pop()).sort()).toEqual(files);
    expect(store.puts.get(`/b/ml/train-x7k2p/${reportDir!.split('/').pop()}/report.json?sig=SECRET`)).toBe(
      readFileSync(join(reportDir!, 'report.json'), 'utf8'),
    );

    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toMatch(/^highwater_oom_detections_total\{reason="low-available"\} 1$/m);
    expect(metrics).toMatch(/^highwater_kubernetes_events_posted_total 1$/m);
    expect(metrics).toMatch(new RegExp(`^highwater_report_uploads_total\\{result="ok"\\} ${files.length}$`, 'm'));
    // pino JSON lines, each with a stable code.
    const lines = w
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    const codes = lines.map((l) => (JSON.parse(l) as { code?: string }).code);
    expect(codes).toContain('HW_WATCH_STARTED');
    expect(codes).toContain('HW_REPORT_WRITTEN');
    expect(codes).toContain('HW_K8S_EVENT_POSTED');
    expect(codes).toContain('HW_REPORT_UPLOADED');
    expect(
      codes.filter((c) => c === undefined),
      lines.join('\n'),
    ).toEqual([]);

    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('without RBAC: one HW_ERR_K8S_FORBIDDEN line, counted, and the report and exit 53 as ever', async () => {
    const fake = await startFakeApiServer();
    cleanups.push(() => fake.close());
    fake.mode = 'forbidden';
    const dir = freshDir('hw-k8s-');
    const runDir = join(dir, 'run');
    const out = join(dir, 'reports');
    mkdirSync(runDir, { mode: 0o700 });
    const { w, metricsUrl } = await watchWithEvents(fake, dir, runDir, out, 'p');
    const app = await appContainer(cgroup(450 * MiB), runDir, join(dir, 'no-termination-log'));
    expect(app.code, app.stderr).toBe(53);
    expect(existsSync(join(dir, 'no-termination-log'))).toBe(false); // never created
    expect(await waitForReports(out, 1, 20_000)).toHaveLength(1);
    await w.waitFor('HW_ERR_K8S_FORBIDDEN', 10_000);
    expect(w.stderr().match(/HW_ERR_K8S_FORBIDDEN/g)).toHaveLength(1);
    expect(w.stderr()).toMatch(/cannot post the HighwaterOOM Event: posting the Event: HTTP 403: events.events.k8s.io is forbidden/);
    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toMatch(/^highwater_kubernetes_event_failures_total\{code="HW_ERR_K8S_FORBIDDEN"\} 1$/m);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('the report volume read-only: the OOM is still counted, and its Event names the line and where the raw data is kept', async () => {
    const fake = await startFakeApiServer();
    cleanups.push(() => fake.close());
    const dir = freshDir('hw-k8s-');
    const runDir = join(dir, 'run');
    const out = join(dir, 'reports');
    mkdirSync(runDir, { mode: 0o700 });
    mkdirSync(out);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', out], { stdio: 'ignore' });
    cleanups.push(() => execFileSync('umount', [out]));
    const { w, metricsUrl } = await watchWithEvents(fake, dir, runDir, out, 'train-x7k2p');
    const termLog = join(dir, 'termination-log');
    writeFileSync(termLog, '');
    const app = await appContainer(cgroup(450 * MiB), runDir, termLog);
    expect(app.code, app.stderr).toBe(53);
    await w.waitFor('raw data kept at', 20_000);
    const dump = /raw data kept at (\S+)/.exec(w.stderr())![1]!;
    expect(dump).toMatch(new RegExp(`^${runDir}/hw-\\d+-\\d+\\.dump$`));
    expect(existsSync(dump)).toBe(true);

    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics, w.stderr()).toMatch(/^highwater_oom_detections_total\{reason="low-available"\} 1$/m);
    expect(metrics).toMatch(/^highwater_report_failures_total\{reason="EROFS"\} 1$/m);
    expect(metrics).not.toMatch(/^highwater_reports_written_total\{/m);

    // The Event: the line from the report built in memory (the same as the shim's termination message), then where the data is.
    for (const end = Date.now() + 10_000; fake.events.length === 0 && Date.now() < end;) await new Promise((r) => setTimeout(r, 100));
    expect(
      fake.creates.map((c) => c.errors),
      w.stderr(),
    ).toEqual([[]]);
    const note = String(fake.events[0]!.note);
    expect(note).toMatch(new RegExp(`^out of memory \\(low-available\\): peak .* of limit 450\\.0 MiB at leak\\.py:${leakLine} `));
    expect(note).toContain(`; report: not written (EROFS); raw data kept at ${dump}`);
    expect(readFileSync(termLog, 'utf8')).toContain(`at leak.py:${leakLine} in leak_step`);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('the shim never follows a symlink and never blocks on a FIFO at the termination-log path', async () => {
    const dir = freshDir('hw-k8s-');
    const runDir = join(dir, 'run');
    mkdirSync(runDir, { mode: 0o700 });
    const target = join(dir, 'precious');
    writeFileSync(target, 'precious\n');
    const link = join(dir, 'termination-log-link');
    symlinkSync(target, link);
    const viaLink = await appContainer(cgroup(450 * MiB), runDir, link);
    expect(viaLink.code, viaLink.stderr).toBe(53);
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);

    const fifo = join(dir, 'termination-log-fifo');
    execFileSync('mkfifo', [fifo]);
    const viaFifo = await appContainer(cgroup(450 * MiB), runDir, fifo);
    expect(viaFifo.code, viaFifo.stderr).toBe(53); // it returned: nothing blocked on the FIFO
  });
});
