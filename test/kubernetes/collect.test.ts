// `highwater collect kubernetes` through the real CLI against a FAKE API
// server on loopback (no real API server can run here): list with the
// reason field selector, namespaces, --since, and --follow over a watch.
/* eslint-disable @typescript-eslint/no-explicit-any -- untyped YAML and JSON bodies */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { factsOf, oomEvent, type PodRef } from '../../sidecar/src/kubernetes/event.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { cliPath, repoRoot, runCli } from '../helpers/cli.js';
import { startFakeApiServer, type FakeApiServer } from './fake-api-server.js';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

function oomOf(pod: PodRef, peakMiB: number, line: number, atMs: number): Record<string, any> {
  const report = {
    trigger: 'oom',
    oomReason: 'low-available',
    peakBytes: peakMiB * MiB,
    memory: { limitBytes: 512 * MiB },
    stacks: [{ bytes: 1, frames: [{ file: `/app/${pod.name.split('-')[0]}.py`, line, function: 'f', code: 'x = load()' }] }],
  } as unknown as ReportJson;
  return oomEvent(pod, factsOf(report, `/reports/${pod.name}/index.html`), atMs);
}

const pod = (name: string, namespace: string): PodRef => ({ name, namespace, uid: `uid-${name}`, node: 'n1', container: 'app' });

describe('highwater collect kubernetes', () => {
  let fake: FakeApiServer;
  let env: NodeJS.ProcessEnv;
  afterEach(async () => fake?.close());

  const setup = async (): Promise<void> => {
    fake = await startFakeApiServer();
    const dir = mkdtempSync(join(tmpdir(), 'hw-kc-'));
    writeFileSync(join(dir, 'config'), fake.kubeconfig());
    env = { KUBECONFIG: join(dir, 'config'), HIGHWATER_LOG_LEVEL: 'warn' };
    const now = Date.now();
    fake.add(oomOf(pod('train-a1', 'ml'), 300, 31, now - 3 * HOUR));
    fake.add(oomOf(pod('train-b2', 'ml'), 350, 44, now - 10 * 60_000));
    fake.add(oomOf(pod('etl-c3', 'data'), 120, 7, now - 5 * 60_000));
    // Not ours: another reason in the same namespace.
    fake.add({ ...oomOf(pod('web-d4', 'ml'), 1, 1, now), reason: 'BackOff' });
  };

  it('lists the HighwaterOOM Events of a namespace, oldest first, as a table', async () => {
    await setup();
    const r = await runCli(['collect', 'kubernetes', '-n', 'ml'], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAMESPACE\/POD\s+CONTAINER\s+WHEN\s+PEAK\s+TOP LINE\s+REPORT$/);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(
      /^ml\/train-a1\s+app\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+300\.0 MiB\s+train\.py:31 x = load\(\)\s+\/reports\/train-a1\/index\.html$/,
    );
    expect(lines[2]).toMatch(/^ml\/train-b2\s+app\s+.*350\.0 MiB\s+train\.py:44 x = load\(\)\s+\/reports\/train-b2\/index\.html$/);
    expect(r.stdout).not.toContain('web-d4');
  });

  it('--all-namespaces --since 1h leaves out older Events; bad --since is a usage error', async () => {
    await setup();
    const r = await runCli(['collect', 'kubernetes', '-A', '--since', '1h'], { env });
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trimEnd().split('\n').slice(1);
    expect(rows.map((l) => l.split(/\s+/)[0])).toEqual(['ml/train-b2', 'data/etl-c3']);
    const bad = await runCli(['collect', 'kubernetes', '-A', '--since', 'yesterday'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since "yesterday": expected a duration');
  });

  it('--follow prints new Events as the watch brings them, and ends cleanly on SIGTERM', async () => {
    await setup();
    const child = spawn(process.execPath, [cliPath, 'collect', 'kubernetes', '-n', 'data', '--follow'], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const until = async (re: RegExp): Promise<void> => {
      for (const end = Date.now() + 15_000; !re.test(out);) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; stdout: ${out}; stderr: ${err}; requests: ${fake.requests.join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(/data\/etl-c3/);
    await new Promise((r) => setTimeout(r, 300)); // the watch is open
    fake.add(oomOf(pod('etl-e5', 'data'), 200, 9, Date.now()));
    fake.add(oomOf(pod('train-f6', 'ml'), 200, 9, Date.now())); // another namespace: not shown
    await until(/data\/etl-e5 .*200\.0 MiB\s+etl\.py:9/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).not.toContain('train-f6');
    expect(out.trimEnd().split('\n')).toHaveLength(3);
  });

  it('without any Kubernetes config: HW_ERR_K8S_NO_CONFIG, exit 1', async () => {
    const home = mkdtempSync(join(tmpdir(), 'hw-home-'));
    const r = await runCli(['collect', 'kubernetes', '-A'], { env: { HOME: home, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no Kubernetes API access');
    expect(r.stderr).toContain('not in a pod (KUBERNETES_SERVICE_HOST unset), no KUBECONFIG, no ~/.kube/config');
  });
});
