// Helpers for the end-to-end Docker tests: make sure an engine runs (starting
// one with .ci/setup-docker.sh when we are root), build the images from local
// bases, run containers and wait for reports.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const examplesDir = join(repoRoot, 'examples/docker');
export const oomJob = join(examplesDir, 'oom_job.py');

/** Line number of the line marked HW-OOM-LINE in the OOM job: the one a report must name. */
export function oomLine(): number {
  const lines = readFileSync(oomJob, 'utf8').split('\n');
  return lines.findIndex((l) => l.includes('# HW-OOM-LINE')) + 1;
}

function dockerInfoOk(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

export interface EngineStatus {
  ok: boolean;
  reason: string;
}

let engineStatus: EngineStatus | undefined;

/**
 * An engine that answers, started here if needed and possible. `reason` says
 * why not, for the skip message.
 */
export function ensureEngine(): EngineStatus {
  if (engineStatus) return engineStatus;
  if (dockerInfoOk()) return (engineStatus = { ok: true, reason: 'engine running' });
  if (process.getuid?.() !== 0) return (engineStatus = { ok: false, reason: 'no Docker engine, and not root to start one' });
  try {
    execFileSync('bash', [join(repoRoot, '.ci/setup-docker.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  } catch (e) {
    return (engineStatus = { ok: false, reason: `could not start a Docker engine: ${(e as Error).message}` });
  }
  return (engineStatus = dockerInfoOk() ? { ok: true, reason: 'engine started' } : { ok: false, reason: 'dockerd did not answer' });
}

/**
 * The tests that need a working shim and the CLI's `watch` inside the image
 * wait for those parts to exist in the tree.
 */
export function stackStatus(): EngineStatus {
  const missing: string[] = [];
  if (!existsSync(join(repoRoot, 'native/Makefile')) || !existsSync(join(repoRoot, 'native/shim'))) missing.push('the preload shim (native/shim)');
  if (!existsSync(join(repoRoot, 'sidecar/src/cli/main.ts'))) missing.push('the CLI (sidecar/src/cli/main.ts)');
  if (!existsSync(join(repoRoot, 'native/python/bootstrap/sitecustomize.py'))) missing.push('the Python bootstrap');
  return missing.length ? { ok: false, reason: `waiting for ${missing.join(', ')}` } : { ok: true, reason: '' };
}

/** Builds images with examples/docker/build-images.sh (bases made when absent). */
export function buildImages(...targets: string[]): void {
  execFileSync('bash', [join(examplesDir, 'build-images.sh'), ...targets], {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 3_000_000,
  });
}

export function imageExists(tag: string): boolean {
  try {
    execFileSync('docker', ['image', 'inspect', tag], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface DockerResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function docker(args: string[], timeoutMs = 600_000): Promise<DockerResult> {
  return new Promise((res) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr });
    });
  });
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 1_800_000): Promise<DockerResult> {
  return new Promise((res) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      res({ code, stdout, stderr });
    });
  });
}

/** Unique names for containers and volumes of one test. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Report directories (holding report.json) directly under dir. */
export function reportsIn(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((d) => join(dir, d))
    .filter((d) => statSync(d).isDirectory() && existsSync(join(d, 'report.json')))
    .sort();
}

export async function waitForReport(dir: string, timeoutMs = 60_000): Promise<string | undefined> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const found = reportsIn(dir);
    if (found.length) return found[found.length - 1];
    if (Date.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface ReportFrame {
  file: string;
  line: number;
  function: string;
  code: string;
}

export interface ReportSummary {
  trigger: string;
  peakBytes: number;
  stacks: Array<{ bytes: number; frames: ReportFrame[] }>;
}

export function readReport(dir: string): ReportSummary {
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ReportSummary;
}

/** The innermost frame of the largest stack. */
export function topFrame(r: ReportSummary): ReportFrame | undefined {
  const s = r.stacks[0];
  return s?.frames[s.frames.length - 1];
}

/** Removes containers and volumes, ignoring the ones that are already gone. */
export async function cleanup(containers: string[], volumes: string[] = []): Promise<void> {
  if (containers.length) await docker(['rm', '-f', '-v', ...containers]);
  if (volumes.length) await docker(['volume', 'rm', '-f', ...volumes]);
}

/** Makes the local base images that are missing (.ci/make-bases.sh keeps existing tags). */
export function ensureBases(...tags: string[]): void {
  execFileSync('bash', [join(repoRoot, '.ci/make-bases.sh'), ...tags], {
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 3_000_000,
  });
}
