/**
 * Runs the real CLI (bin/highwater.js, built by `npm run build`) on real
 * programs and reads the reports it writes. Shared by the profiling suites.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ReportJson } from '../../sidecar/src/report/model.js';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const cliPath = join(repoRoot, 'bin', 'highwater.js');
export const fixtures = join(repoRoot, 'test', 'fixtures');
export const MiB = 1024 * 1024;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  outDir: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  stdin?: string;
  cwd?: string;
  timeoutMs?: number;
  /** Called once the child printed this text on stdout. */
  onStdout?: (text: string, child: import('node:child_process').ChildProcess) => void;
}

export function freshDir(prefix = 'hw-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** `node bin/highwater.js <args>`, collecting everything. */
export function runCli(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const outDir = freshDir('hw-out-');
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: opts.cwd ?? repoRoot,
      env: { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 110_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(stdout, child);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, outDir });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** `highwater run -o <fresh dir> --no-browser <target...>`. */
export function runProfiled(target: string[], opts: RunOptions & { flags?: string[] } = {}) {
  const outDir = freshDir('hw-out-');
  return runCli(['run', '-o', outDir, '--no-browser', ...(opts.flags ?? []), ...target], opts).then((r) => ({ ...r, outDir }));
}

/** The report directories under an output dir, oldest first. */
export function reportDirs(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .filter((d) => existsSync(join(outDir, d, 'report.json')))
    .sort()
    .map((d) => join(outDir, d));
}

export function readReport(dir: string): ReportJson {
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as ReportJson;
}

/** The only report in an output dir (fails when there is not exactly one). */
export function onlyReport(outDir: string): ReportJson {
  const dirs = reportDirs(outDir);
  if (dirs.length !== 1) throw new Error(`expected one report in ${outDir}, found ${dirs.length}`);
  return readReport(dirs[0]!);
}

/**
 * Bytes charged at a source line: the sum over stacks whose innermost frame
 * in `file` (matched by suffix) is at `line`. This is what a reader of the
 * flamegraph sees under that line of that script.
 */
export function bytesAtLine(report: ReportJson, file: string, line: number): number {
  let total = 0;
  for (const s of report.stacks) {
    for (let i = s.frames.length - 1; i >= 0; i--) {
      const f = s.frames[i]!;
      if (f.file.endsWith(file)) {
        if (f.line === line) total += s.bytes;
        break;
      }
    }
  }
  return total;
}

/** Line number of the first line of a fixture containing `marker`. */
export function lineOf(path: string, marker: string): number {
  const lines = readFileSync(path, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`${marker} not in ${path}`);
  return i + 1;
}

export function expectNear(actual: number, expected: number, tolerance = 0.05): void {
  const lo = expected * (1 - tolerance);
  const hi = expected * (1 + tolerance);
  if (!(actual >= lo && actual <= hi)) {
    throw new Error(`expected ${actual} to be within ${tolerance * 100}% of ${expected}`);
  }
}

/** Every CPython 3.8 – 3.15 on this machine (pyenv), or what PATH offers. */
export function pythons(): { version: string; path: string }[] {
  const root = '/root/.pyenv/versions';
  const found: { version: string; path: string }[] = [];
  if (existsSync(root)) {
    for (const v of readdirSync(root).sort()) {
      const m = /^3\.(\d+)\./.exec(v);
      if (!m || Number(m[1]) < 8 || Number(m[1]) > 15) continue;
      const exe = join(root, v, 'bin', 'python3');
      if (existsSync(exe)) found.push({ version: v, path: exe });
    }
  }
  return [...found, ...extraPythons()];
}

/**
 * The data-stack slack the shim gives this CPython on its own
 * (native/shim/datastack.c, hw__chunks_slack): 1 where it holds a popped chunk
 * back (3.13.13+, 3.14.4+, 3.15), 0 where it unmaps at once, -1 before 3.11.
 */
export function ownSlack(version: string): number {
  const [minor, micro] = version.split('.').slice(1).map(Number) as [number, number];
  if (minor < 11) return -1;
  if (minor === 13) return micro >= 13 ? 1 : 0;
  if (minor === 14) return micro >= 4 ? 1 : 0;
  return minor >= 15 ? 1 : 0;
}

/**
 * CPythons beyond pyenv's: HIGHWATER_TEST_PYTHONS, a comma-separated list of
 * interpreters (.ci/run unpacks Debian's 3.14 and 3.15 there, see
 * .ci/debian-pythons.sh), each asked for its version once.
 */
let extra: { version: string; path: string }[] | undefined;
function extraPythons(): { version: string; path: string }[] {
  if (extra) return extra;
  extra = [];
  for (const exe of (process.env.HIGHWATER_TEST_PYTHONS ?? '').split(',').filter(Boolean)) {
    const r = spawnSync(exe, ['-c', 'import platform; print(platform.python_version())'], { encoding: 'utf8' });
    const version = r.status === 0 ? r.stdout.trim() : '';
    if (!/^3\.(\d+)\./.test(version)) throw new Error(`HIGHWATER_TEST_PYTHONS: ${exe} is not a CPython 3 (${r.stderr})`);
    extra.push({ version, path: exe });
  }
  return extra;
}

/** A python3 with numpy, for the examples. */
export function pythonWithNumpy(): string {
  const pyenv = '/root/.pyenv/versions/3.11.7/bin/python3';
  return existsSync(pyenv) ? pyenv : 'python3';
}
