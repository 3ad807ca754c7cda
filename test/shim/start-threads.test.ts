// A tracked process's start must not wait on the kernel: membarrier's
// registration (the owner thread's plain path, native/shim/owner.c) returns
// at once while the process has one thread, and waits out an RCU grace
// period (15 ms measured) once it has two. So the shim registers before it
// starts its control thread. The order is a fact strace shows, not a time:
// in the root process, REGISTER_PRIVATE_EXPEDITED comes before any thread is
// created, on every CPython 3.8 - 3.15 found.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshDir, pythons } from '../helpers/cli.js';
import { shimmedEnv } from './shimmed.js';

const strace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;

/** The root process's membarrier and thread-creating calls, in order. */
function rootCalls(python: string): string[] {
  const dir = freshDir('hw-start-threads-');
  const out = join(dir, 'strace.txt');
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=membarrier,clone,clone3', '-o', out, python, '-c', 'pass'], {
    env: shimmedEnv(join(dir, 'run')),
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  const lines = readFileSync(out, 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  // strace -f pads the pid column ("%-5d "): a 4-digit pid is followed by two spaces.
  const calls = lines.map((l) => /^(\d+)\s+(.*)$/.exec(l)).filter((m) => m !== null);
  const root = calls[0]![1];
  return calls.filter((m) => m[1] === root).map((m) => m[2]!);
}

describe.skipIf(!strace)(`membarrier registers before the shim's thread starts${strace ? '' : ' (skipped: no strace)'}`, () => {
  it.each(pythons().map((p) => [p.version, p.path] as const))('Python %s', (_version, exe) => {
    const calls = rootCalls(exe);
    const register = calls.findIndex((c) => c.includes('MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED'));
    const firstThread = calls.findIndex((c) => /^clone3?\(/.test(c) && c.includes('CLONE_THREAD'));
    expect(register, calls.join('\n')).toBeGreaterThanOrEqual(0);
    expect(firstThread, calls.join('\n')).toBeGreaterThanOrEqual(0); // the control thread
    expect(register, calls.join('\n')).toBeLessThan(firstThread);
  });
});
