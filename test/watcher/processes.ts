/**
 * Runs the real `highwater watch` (bin/highwater.js, built by `npm run
 * build`) and real Python processes under the shim with the environment the
 * CLI's childEnv builds, sharing a run dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { existsSync, readdirSync } from 'node:fs';
import { cliPath, lineOf, repoRoot } from '../helpers/cli.js';

export const holdScript = join(import.meta.dirname, 'fixtures', 'hold.py');
export const watchLine = lineOf(holdScript, '# WATCH-LINE');

export interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once `text` appeared on stdout or stderr; rejects after timeoutMs. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
}

function track(child: ChildProcess): Proc {
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('close', (code, signal) => res({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitFor(text, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      const seen = () => (typeof text === 'string' ? (out + err).includes(text) : text.test(out + err));
      while (!seen()) {
        if (Date.now() > end || done) {
          if (seen()) return;
          throw new Error(`timed out waiting for ${String(text)}; stdout: ${out}; stderr: ${err}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** `highwater watch --run-dir R --output O ...args`. */
export function startWatch(runDir: string, outDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}, prefix: string[] = []): Proc {
  const argv = [...prefix, process.execPath, cliPath, 'watch', '--run-dir', runDir, '--output', outDir, ...args];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: repoRoot,
    env: { ...process.env, HIGHWATER_LOG_LEVEL: 'info', HIGHWATER_TERMINATION_LOG: '/nonexistent/termination-log', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(child);
}

/** python3 hold.py (or another script and its arguments) under the shim, tracking on, writing to runDir. */
export function startPython(runDir: string, env: NodeJS.ProcessEnv = {}, argv: string[] = [holdScript]): Proc {
  const config = loadConfig({}, {});
  const base = { ...process.env, ...env };
  const child = spawn('python3', argv, {
    cwd: repoRoot,
    env: childEnv(base, bundlePaths(repoRoot), config, runDir, 'run', process.execPath),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(child);
}

/** Complete report directories (index.html is written last) under outDir, oldest first. */
export function completeReports(outDir: string): string[] {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .filter((d) => existsSync(join(outDir, d, 'index.html')))
    .sort()
    .map((d) => join(outDir, d));
}

export async function waitForReports(outDir: string, n: number, timeoutMs = 20_000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const dirs = completeReports(outDir);
    if (dirs.length >= n || Date.now() > end) return dirs;
    await new Promise((r) => setTimeout(r, 100));
  }
}
