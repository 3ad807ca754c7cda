// highwater in real containers with real memory limits: single-container
// mode, sidecar mode, normal finish, docker stop, Python 3.13, collect docker.
// Needs a Docker engine (started when possible) and the whole stack (shim,
// bootstrap, CLI `watch`), which the images build from this tree.
// Run alone with `npx vitest run test/docker`.
import { chmodSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectDocker, ENABLED_LABEL } from '../../sidecar/src/docker/collect.js';
import {
  buildImages,
  cleanup,
  docker,
  ensureEngine,
  examplesDir,
  oomLine,
  readReport,
  reportsIn,
  repoRoot,
  run,
  stackStatus,
  uniqueName,
  waitForReport,
  type ReportFrame,
  type ReportSummary,
} from '../helpers/docker.js';

const engine = ensureEngine();
const stack = stackStatus();
const ready = engine.ok && stack.ok;
if (!engine.ok) console.warn(`skipping Docker tests: ${engine.reason}`);
else if (!stack.ok) console.warn(`skipping highwater Docker end-to-end tests: ${stack.reason}`);

const MEMORY = ['--memory', '400m', '--memory-swap', '400m'];
const MiB = 1024 * 1024;

function reportsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hw-reports-'));
  chmodSync(dir, 0o777); // the sidecar writes as uid 10001
  return dir;
}

/**
 * The innermost frame of the job's own file in the largest stack: `np.ones`
 * is Python code in numpy, so the very innermost frame is numpy's.
 */
function jobFrame(r: ReportSummary): ReportFrame | undefined {
  const frames = r.stacks[0]?.frames ?? [];
  return [...frames].reverse().find((f) => /job\.py$/.test(f.file));
}

/** The report names the OOM job's allocation line, and that line holds most of the peak. */
function expectNamesOomLine(dir: string): void {
  const r = readReport(dir);
  const f = jobFrame(r);
  expect(f, JSON.stringify(r.stacks.slice(0, 2))).toBeDefined();
  expect(f!.line).toBe(oomLine());
  expect(f!.function).toBe('load_batch');
  expect(f!.code).toContain('np.ones(');
  // 20 MiB per step at that line; the rest of the peak is the interpreter, numpy and a 4 MiB table.
  const atLine = r.stacks.filter((s) => s.frames.some((x) => /job\.py$/.test(x.file) && x.line === oomLine())).reduce((n, s) => n + s.bytes, 0);
  expect(atLine).toBeGreaterThan(0.5 * r.peakBytes);
  expect(atLine).toBeGreaterThanOrEqual(100 * MiB);
  expect(existsSync(join(dir, 'index.html'))).toBe(true);
}

describe.skipIf(!ready)('docker: highwater end to end', () => {
  const containers: string[] = [];
  const volumes: string[] = [];

  beforeAll(() => buildImages('job', 'job-slim', 'job-trixie', 'sidecar'), 3_000_000);
  afterAll(() => cleanup(containers, volumes));

  it('single container: the OOM job exits 53 and the report on the volume names the line', async () => {
    const dir = reportsDir();
    const r = await run('bash', [join(examplesDir, 'run-oom-demo.sh'), dir], { ...process.env, HIGHWATER_DEMO_SKIP_BUILD: '1' });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(2);
    expect(lines[0]).toBe('exit code: 53');
    const m = /^report: (.+)$/.exec(lines[1]!);
    expect(m?.[1], r.stderr).not.toBe('none');
    expect(m![1]!.startsWith(dir)).toBe(true);
    expectNamesOomLine(m![1]!);
    expect(readReport(m![1]!).trigger).toBe('oom');
  });

  it('a job that finishes normally keeps its exit code and gets a peak report', async () => {
    const dir = reportsDir();
    const r = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      ...MEMORY,
      '-e',
      'HIGHWATER_WATCH=1',
      '-e',
      'STEPS=6',
      '-e',
      'EXIT_CODE=3',
      '-v',
      `${dir}:/reports`,
      'highwater-demo-job',
    ]);
    expect(r.code, r.stderr).toBe(3);
    const report = await waitForReport(dir, 5_000);
    expect(report, r.stderr).toBeDefined();
    const rep = readReport(report!);
    expect(rep.trigger).toBe('exit');
    expect(rep.peakBytes).toBeGreaterThanOrEqual(6 * 20 * MiB);
    expect(jobFrame(rep)?.line).toBe(oomLine());
  });

  it('docker stop: a clean stop and a report of the peak so far', async () => {
    const dir = reportsDir();
    const name = uniqueName('hw-stop');
    containers.push(name);
    const started = await docker([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      ...MEMORY,
      '-e',
      'HIGHWATER_WATCH=1',
      '-e',
      'STEPS=5',
      '-e',
      'HOLD_SECONDS=300',
      '-v',
      `${dir}:/reports`,
      'highwater-demo-job',
    ]);
    expect(started.code, started.stderr).toBe(0);
    const end = Date.now() + 60_000;
    // The line "holding" alone (each step also prints "step N: holding X MiB").
    const holding = async () => (await docker(['logs', name])).stdout.split('\n').includes('holding');
    while (!(await holding()) && Date.now() < end) await new Promise((r) => setTimeout(r, 300));
    const stop = await docker(['stop', '-t', '30', name]);
    expect(stop.code).toBe(0);
    const code = Number((await docker(['inspect', '-f', '{{.State.ExitCode}}', name])).stdout.trim());
    expect(code).toBe(143);
    const report = await waitForReport(dir, 5_000);
    expect(report, (await docker(['logs', name])).stderr).toBeDefined();
    const rep = readReport(report!);
    expect(rep.peakBytes).toBeGreaterThanOrEqual(5 * 20 * MiB);
    expect(jobFrame(rep)?.line).toBe(oomLine());
  });

  it('Python 3.13 (trixie) works with the same bundle', async () => {
    const dir = reportsDir();
    const version = await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'python3', 'highwater-demo-job-trixie', '--version']);
    expect(version.stdout).toMatch(/Python 3\.13/);
    const r = await run('bash', [join(examplesDir, 'run-oom-demo.sh'), dir], {
      ...process.env,
      HIGHWATER_DEMO_SKIP_BUILD: '1',
      HIGHWATER_DEMO_IMAGE: 'highwater-demo-job-trixie',
    });
    expect(r.stdout, r.stderr).toContain('exit code: 53');
    const report = reportsIn(dir).at(-1);
    expect(report, r.stderr).toBeDefined();
    expectNamesOomLine(report!);
  });

  // The bundle carries the .pycs the build made (native/python/compile-bytecode.sh):
  // a tracked start in the image loads highwater's modules instead of
  // compiling them, although the image's COPY gave the sources new mtimes
  // and PYTHONDONTWRITEBYTECODE keeps CPython from saving its own.
  it.each(['highwater-demo-job', 'highwater-demo-job-trixie'])('%s: a tracked start loads highwater from the bundle’s bytecode', async (image) => {
    const r = await docker(['run', '--rm', '--network', 'none', '-e', 'PYTHONDONTWRITEBYTECODE=1', image, 'python3', '-v', '-c', 'print("ran")']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('ran');
    const from = [...r.stderr.matchAll(/^# code object from '?(\/opt\/highwater\/[^'\n]+)'?$/gm)].map((m) => m[1]!);
    expect(from, r.stderr.slice(-4000)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\/opt\/highwater\/python\/bootstrap\/__pycache__\/sitecustomize\.cpython-31\d\.pyc$/),
        expect.stringMatching(/^\/opt\/highwater\/python\/highwater\/__pycache__\/_bootstrap\.cpython-31\d\.pyc$/),
      ]),
    );
    expect(
      from.filter((f) => f.endsWith('.py')),
      r.stderr.slice(-4000),
    ).toEqual([]);
  });

  it('sidecar mode: the app exits 53, the sidecar writes the report', async () => {
    const dir = reportsDir();
    const runVol = uniqueName('hw-run');
    const sidecar = uniqueName('hw-sidecar');
    const app = uniqueName('hw-app');
    containers.push(sidecar, app);
    volumes.push(runVol);
    const s = await docker([
      'run',
      '-d',
      '--name',
      sidecar,
      '--network',
      'none',
      '-v',
      `${runVol}:/run/highwater`,
      '-v',
      `${dir}:/reports`,
      'highwater:latest',
    ]);
    expect(s.code, s.stderr).toBe(0);
    const r = await docker([
      'run',
      '--name',
      app,
      '--network',
      'none',
      ...MEMORY,
      '--label',
      ENABLED_LABEL,
      '--label',
      `io.highwater.sidecar=${sidecar}`,
      '-v',
      `${runVol}:/run/highwater`,
      '-e',
      'HIGHWATER_RUN_DIR=/run/highwater',
      '-e',
      'HIGHWATER_CONTROL_UID=10001',
      '-e',
      'HIGHWATER_FILE_MODE=0666',
      'highwater-demo-job-slim',
    ]);
    expect(r.code, r.stderr).toBe(53);
    const report = await waitForReport(dir, 60_000);
    expect(report, (await docker(['logs', sidecar])).stderr).toBeDefined();
    expectNamesOomLine(report!);

    // collect docker follows the app's sidecar label to the report.
    const out = mkdtempSync(join(tmpdir(), 'hw-collected-'));
    const rows = await collectDocker({ output: out }, pino({ level: 'silent' }));
    const row = rows.find((x) => x.container === app);
    expect(row).toMatchObject({ exitCode: 53, source: sidecar });
    expect(row!.topLine).toContain(`job.py:${oomLine()}`);
  });

  it('report volume read-only: the job still exits 53 and the error names the path and the errno', async () => {
    const dir = reportsDir();
    const r = await docker(['run', '--rm', '--network', 'none', ...MEMORY, '-e', 'HIGHWATER_WATCH=1', '-v', `${dir}:/reports:ro`, 'highwater-demo-job']);
    expect(r.code, r.stdout + r.stderr).toBe(53);
    expect(r.stderr).toMatch(/highwater: could not render \/tmp\/highwater-run\/hw-\d+-\d+\.dump: cannot write the report at \/reports\/\S+: EROFS/);
    expect(r.stderr).toMatch(/highwater: raw data kept at \/tmp\/highwater-run\/hw-\d+-\d+\.dump/);
    expect(reportsIn(dir)).toEqual([]);
  });

  it('run dir not shared: the sidecar says so within seconds', async () => {
    const name = uniqueName('hw-lonely');
    const runVol = uniqueName('hw-run-lonely');
    containers.push(name);
    volumes.push(runVol);
    const t0 = Date.now();
    const s = await docker(['run', '-d', '--name', name, '--network', 'none', '-v', `${runVol}:/run/highwater`, 'highwater:latest']);
    expect(s.code, s.stderr).toBe(0);
    const message =
      'highwater: no tracked process in /run/highwater after 5 s: is the run dir shared with the application container (same volume at the same HIGHWATER_RUN_DIR)?';
    let logs = '';
    while (!logs.includes(message) && Date.now() - t0 < 30_000) {
      await new Promise((r) => setTimeout(r, 250));
      logs = (await docker(['logs', name])).stderr;
    }
    expect(logs).toContain(message);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect((await docker(['inspect', '-f', '{{.State.Running}}', name])).stdout.trim()).toBe('true'); // still watching
    const stop = Date.now();
    expect((await docker(['stop', '-t', '30', name])).code).toBe(0);
    expect(Date.now() - stop).toBeLessThan(10_000);
    expect((await docker(['inspect', '-f', '{{.State.ExitCode}}', name])).stdout.trim()).toBe('0');
  });

  it('collect docker copies the report out of a stopped OOM container', async () => {
    const name = uniqueName('hw-collect-e2e');
    containers.push(name);
    const r = await docker(['run', '--name', name, '--network', 'none', ...MEMORY, '-e', 'HIGHWATER_WATCH=1', '--label', ENABLED_LABEL, 'highwater-demo-job']);
    expect(r.code, r.stderr).toBe(53);
    const out = mkdtempSync(join(tmpdir(), 'hw-collected-'));
    const rows = await collectDocker({ output: out }, pino({ level: 'silent' }));
    const row = rows.find((x) => x.container === name);
    expect(row, JSON.stringify(rows)).toBeDefined();
    expect(row!.exitCode).toBe(53);
    expect(row!.peakBytes).toBeGreaterThan(100 * MiB);
    expect(row!.topLine).toContain(`job.py:${oomLine()}`);
    expectNamesOomLine(row!.reportPath);

    // The same through the CLI: `highwater collect docker -o DIR` prints the table.
    const cliOut = mkdtempSync(join(tmpdir(), 'hw-collected-cli-'));
    const cli = await run(process.execPath, [join(repoRoot, 'bin/highwater.js'), 'collect', 'docker', '-o', cliOut]);
    expect(cli.code, cli.stderr).toBe(0);
    const lines = cli.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^CONTAINER\s+EXIT\s+PEAK\s+TOP LINE\s+REPORT$/);
    // The CONTAINER column is 24 characters wide; longer names end in '…'.
    const shown = name.length >= 24 ? `${name.slice(0, 23)}…` : name.padEnd(24);
    const mine = lines.find((l) => l.startsWith(shown));
    expect(mine, cli.stdout).toBeDefined();
    expect(mine!.slice(25)).toMatch(new RegExp(`^53\\s+\\d+\\.\\d MiB\\s+job\\.py:${oomLine()} return np\\.ones`));
    const copied = mine!.split(/\s+/).at(-1)!;
    expect(copied.startsWith(join(cliOut, name))).toBe(true);
    expectNamesOomLine(copied);
  });
});
