// Helpers for the highwater-init tests: build the binary, make a fake bundle,
// run the init and watch its process tree through /proc.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const initBinary = join(repoRoot, 'native/build/highwater-init');

/** Builds native/build/highwater-init (through native/Makefile when it includes Makefile.init). */
export function buildInit(): string {
  const native = join(repoRoot, 'native');
  const viaMain = existsSync(join(native, 'Makefile')) && /Makefile\.init/.test(readFileSync(join(native, 'Makefile'), 'utf8'));
  const args = viaMain ? ['-C', native, 'init'] : ['-C', native, '-f', 'Makefile.init', 'init'];
  execFileSync('make', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return initBinary;
}

export interface FakeBundle {
  home: string;
  shim: string;
  /** A second, harmless preload library to stand for a user's LD_PRELOAD. */
  otherLib: string;
}

/**
 * A bundle laid out like /opt/highwater, with a no-op shared object as the
 * shim (the real shim is tested elsewhere) and a sitecustomize that marks
 * that the bootstrap directory is on sys.path.
 */
export function makeFakeBundle(opts: { watcher?: string } = {}): FakeBundle {
  const home = mkdtempSync(join(tmpdir(), 'hw-bundle-'));
  for (const d of ['bin', 'lib', 'python/bootstrap', 'python/highwater']) mkdirSync(join(home, d), { recursive: true });
  const src = join(home, 'noop.c');
  writeFileSync(src, 'int hw_test_noop(void) { return 0; }\n');
  const shim = join(home, 'lib/libhighwater.so');
  const otherLib = join(home, 'lib/libother.so');
  execFileSync('cc', ['-shared', '-fPIC', '-o', shim, src]);
  execFileSync('cc', ['-shared', '-fPIC', '-o', otherLib, src]);
  writeFileSync(join(home, 'python/bootstrap/sitecustomize.py'), 'import os\nos.environ["HW_TEST_BOOTSTRAP_LOADED"] = "1"\n');
  writeFileSync(join(home, 'python/highwater/__init__.py'), '');
  if (opts.watcher !== undefined) {
    mkdirSync(join(home, 'node/bin'), { recursive: true });
    mkdirSync(join(home, 'dist/cli'), { recursive: true });
    writeFileSync(join(home, 'dist/cli/main.js'), '// fake CLI\n');
    const node = join(home, 'node/bin/node');
    writeFileSync(node, `#!/bin/sh\n${opts.watcher}\n`);
    chmodSync(node, 0o755);
  }
  return { home, shim, otherLib };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Environment without anything highwater-related from the outer process. */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    if (k.startsWith('HIGHWATER_') || k === 'LD_PRELOAD' || k === 'PYTHONPATH' || /_THREADS$|_NTHREADS$/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stdout contains text. */
  waitFor: (text: string, timeoutMs?: number) => Promise<void>;
  done: Promise<RunResult>;
}

export function start(cmd: string, args: string[], env: Record<string, string>): Running {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of waiters.splice(0)) {
      if (out.includes(w.text)) w.resolve();
      else waiters.push(w);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<RunResult>((res) => child.on('close', (code, signal) => res({ code, signal, stdout: out, stderr: err })));
  const waitFor = (text: string, timeoutMs = 15_000) =>
    new Promise<void>((res, rej) => {
      if (out.includes(text)) return res();
      const t = setTimeout(() => rej(new Error(`timed out waiting for ${JSON.stringify(text)}; stdout=${out} stderr=${err}`)), timeoutMs);
      waiters.push({ text, resolve: () => (clearTimeout(t), res()) });
    });
  return { child, stdout: () => out, stderr: () => err, waitFor, done };
}

export function run(cmd: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return start(cmd, args, env).done;
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
}

/** Every process on the host (or in the current PID namespace), from /proc/<pid>/stat. */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const rest = stat.slice(close + 2).split(' ');
    out.push({ pid: Number(name), comm, state: rest[0]!, ppid: Number(rest[1]) });
  }
  return out;
}

export function childrenOf(pid: number): ProcInfo[] {
  return processes().filter((p) => p.ppid === pid);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function hasPython(): boolean {
  try {
    execFileSync('python3', ['-c', 'pass'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
