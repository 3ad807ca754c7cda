// A pod without a kubelet (no API server or kubelet can run here): the
// sidecar `highwater watch --events` runs as in a pod — its own mount
// namespace with the service account mounted where the kubelet mounts it,
// KUBERNETES_SERVICE_HOST/PORT pointing at the FAKE API server over HTTPS —
// and the app runs under the shim in its own PID namespace (no
// shareProcessNamespace), sharing only the run dir. The app is SIGKILLed, as
// the kernel's OOM killer does with memory.oom.group=1: the post-mortem from
// the state file must reach the pod as one valid Event naming the line, and
// the sidecar must have done it without loading client-node.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { humanBytes } from '../../sidecar/src/report/format.js';
import { topLine } from '../../sidecar/src/watcher/summary.js';
import { MiB, bytesAtLine, cliPath, freshDir, lineOf, readReport, repoRoot } from '../helpers/cli.js';
import { selfSignedCert, startFakeApiServer, type FakeApiServer } from './fake-api-server.js';

const heldPy = join(import.meta.dirname, 'fixtures', 'held.py');
const heldLine = lineOf(heldPy, 'HELD-LINE');

/** Why this machine cannot make the namespaces, or null. */
function namespacesUnavailable(): string | null {
  try {
    execFileSync('unshare', ['-m', '-p', '-f', '--mount-proc', 'true'], { stdio: 'ignore' });
    return null;
  } catch (e) {
    return `unshare -m -p (root) failed: ${(e as Error).message.split('\n')[0]}`;
  }
}
const unavailable = namespacesUnavailable();

function collect(child: ChildProcess): { text: () => string; waitFor: (re: RegExp, ms: number) => Promise<RegExpExecArray> } {
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return {
    text: () => text,
    async waitFor(re, ms) {
      const end = Date.now() + ms;
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (Date.now() > end || child.exitCode !== null) throw new Error(`no ${re} within ${ms} ms:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

const rssOf = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

describe.skipIf(unavailable !== null)(`a killed app in a pod-like setup${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('SIGKILL of the app: the post-mortem names the line, and one valid Event (action Killed) says so, posted with node:https', async () => {
    const dir = freshDir('hw-k8s-killed-');
    const served = selfSignedCert(dir, 'server');
    const fake: FakeApiServer = await startFakeApiServer('pod-token', served);
    cleanups.push(() => fake.close());
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), 'pod-token');
    writeFileSync(join(sa, 'ca.crt'), served.cert);
    const runDir = join(dir, 'run');
    const out = join(dir, 'reports');
    mkdirSync(runDir, { mode: 0o700 });

    // The sidecar: /var/run/secrets/kubernetes.io/serviceaccount as the kubelet mounts it, in a private mount namespace.
    const argv = [process.execPath, cliPath, 'watch', '--run-dir', runDir, '--output', out, '--metrics-port', '0', '--warn-after', '0', '--events'];
    const script = `mount -t tmpfs tmpfs "$(readlink -f /var/run)" && mkdir -p /var/run/secrets/kubernetes.io && cp -r '${sa}' /var/run/secrets/kubernetes.io/ && exec ${argv.map((a) => `'${a}'`).join(' ')}`;
    const { KUBECONFIG: _kc, ...env } = process.env;
    const sidecar = spawn('unshare', ['-m', 'sh', '-c', script], {
      cwd: repoRoot,
      env: {
        ...env,
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: new URL(fake.url).port,
        HIGHWATER_POD_NAME: 'etl-4mz8q',
        HIGHWATER_POD_NAMESPACE: 'batch',
        HIGHWATER_POD_UID: '3f0c9a2e-0000-4000-8000-00000000000a',
        HIGHWATER_NODE_NAME: 'node-1',
        HIGHWATER_APP_CONTAINER: 'app',
        HIGHWATER_LOG_FORMAT: 'json',
        HIGHWATER_LOG_LEVEL: 'info',
        HIGHWATER_TERMINATION_LOG: '/nonexistent/termination-log',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => sidecar.kill('SIGKILL'));
    const side = collect(sidecar);
    await side.waitFor(/HW_WATCH_STARTED/, 30_000);

    // The app container: its own PID namespace, so the sidecar reads the status the shim publishes.
    const appEnv = childEnv({ ...process.env }, bundlePaths(repoRoot), loadConfig({}, {}), runDir, 'run', process.execPath);
    const app = spawn('unshare', ['-p', '-f', '--mount-proc', 'python3', heldPy], { cwd: repoRoot, env: appEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => app.kill('SIGKILL'));
    const appOut = collect(app);
    await appOut.waitFor(/ready/, 30_000);
    await side.waitFor(/"code":"HW_PROCESS_FOUND"[^\n]*"readings":"state file"/, 10_000);
    await new Promise((r) => setTimeout(r, 1000)); // a few passes over a live process

    // No client-node in the sidecar: with it loaded, RSS is above 120 MiB (docs/kubernetes.md, "Measured").
    const rss = rssOf(sidecar.pid!);
    expect(rss, `sidecar RSS ${humanBytes(rss)}`).toBeLessThan(100 * MiB);

    const [pythonPid] = readFileSync(`/proc/${app.pid}/task/${app.pid}/children`, 'utf8').trim().split(' ');
    process.kill(Number(pythonPid), 'SIGKILL');
    await side.waitFor(/"code":"HW_REPORT_WRITTEN","trigger":"killed"/, 20_000);
    await side.waitFor(/"code":"HW_K8S_EVENT_POSTED"/, 10_000);

    const reportDirs = readdirSync(out).filter((d) => existsSync(join(out, d, 'index.html')));
    expect(reportDirs).toHaveLength(1);
    const reportDir = join(out, reportDirs[0]!);
    const report = readReport(reportDir);
    expect(report.trigger).toBe('killed');
    expect(bytesAtLine(report, 'held.py', heldLine)).toBeGreaterThanOrEqual(48 * MiB);
    expect(topLine(report)).toMatch(new RegExp(`^held\\.py:${heldLine}\\b`));

    expect(
      fake.creates.map((c) => c.errors),
      side.text(),
    ).toEqual([[]]);
    const ev = fake.events[0]!;
    expect(ev).toMatchObject({
      reason: 'HighwaterOOM',
      action: 'Killed',
      type: 'Warning',
      regarding: { kind: 'Pod', name: 'etl-4mz8q', namespace: 'batch', uid: '3f0c9a2e-0000-4000-8000-00000000000a', fieldPath: 'spec.containers{app}' },
    });
    expect(ev.metadata.annotations['highwater.dev/trigger']).toBe('killed');
    expect(ev.note).toBe(
      `killed (SIGKILL, most likely the kernel OOM killer) before highwater could act: peak ${humanBytes(report.peakBytes)} at ${topLine(report)}; report: ${join(reportDir, 'index.html')}`,
    );
    expect(fake.requests).toEqual(['POST /apis/events.k8s.io/v1/namespaces/batch/events']);

    sidecar.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => (sidecar.exitCode !== null ? r(sidecar.exitCode) : sidecar.on('close', (c) => r(c))));
    expect(code, side.text()).toBe(0);
  });
});
