/**
 * A Python process under the shim without the CLI: the environment the CLI
 * gives its child (LD_PRELOAD, bootstrap, run dir), so a test can talk to
 * the control socket and read the run dir itself.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../helpers/cli.js';

export interface Shimmed {
  pid: number;
  stdout(): string;
  stderr(): string;
  waitFor(text: string, timeoutMs?: number): Promise<void>;
  send(text: string): void;
  exit: Promise<number | null>;
  kill(): void;
}

export function shimmedEnv(runDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    LD_PRELOAD: join(repoRoot, 'native', 'build', 'libhighwater.so'),
    PYTHONPATH: [join(repoRoot, 'native', 'python', 'bootstrap'), join(repoRoot, 'native', 'python')].join(':'),
    HIGHWATER_RUN_DIR: runDir,
    HIGHWATER_MODE: 'run',
    ...extra,
  };
}

export function shimmedPython(runDir: string, args: string[], extra: NodeJS.ProcessEnv = {}, python = 'python3'): Shimmed {
  const child = spawn(python, args, { env: shimmedEnv(runDir, extra), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    async waitFor(text, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      while (!out.includes(text)) {
        if (Date.now() > end || child.exitCode !== null) throw new Error(`no "${text}" on stdout; stderr: ${err}`);
        await sleep(20);
      }
    },
    send: (text) => void child.stdin.write(text),
    exit,
    kill: () => void (child.exitCode === null && child.kill('SIGKILL')),
  };
}
