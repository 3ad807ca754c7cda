/**
 * Starting the program with its arguments and environment byte for byte.
 * Node decodes its argv and environment as UTF-8 and replaces what is not
 * with U+FFFD, so the program is not started with Node's strings: the bytes
 * come from /proc/self/cmdline and /proc/self/environ, and `highwater-init
 * --exec-from-fd` execs them in place (same pid) with only highwater's own
 * variables changed (docs/security.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { constants as osConstants, endianness } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { rawTargetArgv, rawUserArgs, splitNul, type Target } from './args.js';
import { execBlock, rawEnvironment } from './env.js';
import type { BundlePaths } from './paths.js';

export interface RawInvocation {
  /** highwater-init, which execs the program from the bytes. */
  init: string;
  /** The program's argv, byte for byte as the user gave it. */
  argv: Buffer[];
  /** This process's environment as the kernel gave it, NAME=value fields. */
  environ: Buffer[];
}

/**
 * Node decodes its argv and environment as UTF-8 and replaces what is not
 * with U+FFFD: a program started with those strings would not get its own
 * arguments (`highwater run args.py $'\\xff'`). The original bytes are in
 * /proc/self/cmdline and /proc/self/environ. undefined (the strings are used)
 * when they cannot be read, do not match what Node decoded (e.g. called as a
 * library), or highwater-init, which execs them, is not there.
 */
export function rawInvocation(target: Target, python: string, argv: string[], env: NodeJS.ProcessEnv, paths: BundlePaths): RawInvocation | undefined {
  if (env !== process.env || !existsSync(paths.init)) return undefined;
  try {
    const args = rawUserArgs(readFileSync('/proc/self/cmdline'), process.argv.slice(2));
    if (!args) return undefined;
    const rawArgv = rawTargetArgv(target, python, args);
    // The bytes must be exactly the words the parser gave the program.
    if (rawArgv.length !== argv.length || rawArgv.some((b, i) => b.toString('utf8') !== argv[i])) return undefined;
    return { init: paths.init, argv: rawArgv, environ: splitNul(readFileSync('/proc/self/environ')) };
  } catch {
    return undefined;
  }
}

const errnoNames = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/**
 * Start the program: through `highwater-init --exec-from-fd` with the raw
 * bytes when there are any (fd 3 carries argv and environment, fd 4 the
 * errno of a failed exec), else with Node's strings. Same pid either way:
 * highwater-init execs the program in place.
 */
export function startChild(
  argv: string[],
  childEnvironment: NodeJS.ProcessEnv,
  raw: RawInvocation | undefined,
  decodedEnv: NodeJS.ProcessEnv,
): { child: ChildProcess; execError: Promise<NodeJS.ErrnoException | undefined> } {
  if (!raw) return { child: spawn(argv[0]!, argv.slice(1), { stdio: 'inherit', env: childEnvironment }), execError: Promise.resolve(undefined) };
  const child = spawn(raw.init, ['--exec-from-fd', '3', '--status-fd', '4'], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'],
    env: {}, // the program's environment comes through fd 3
  });
  const block = child.stdio[3] as Writable;
  block.on('error', () => {}); // the helper died first: its exit says why
  block.end(execBlock(raw.argv, rawEnvironment(raw.environ, decodedEnv, childEnvironment)));
  const status = child.stdio[4] as Readable;
  const execError = new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    const chunks: Buffer[] = [];
    status.on('data', (d: Buffer) => chunks.push(d));
    status.on('error', () => resolve(undefined));
    status.on('close', () => {
      const b = Buffer.concat(chunks);
      if (b.length < 4) return resolve(undefined);
      const errno = endianness() === 'LE' ? b.readInt32LE(0) : b.readInt32BE(0);
      const code = errnoNames.get(errno) ?? `errno ${errno}`;
      resolve(Object.assign(new Error(code), { code, errno }));
    });
  });
  return { child, execError };
}
