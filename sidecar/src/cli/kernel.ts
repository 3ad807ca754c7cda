/**
 * `highwater kernel install [--user|--prefix DIR] [--python EXE]`: a Jupyter
 * kernel spec "Python 3 with highwater" that runs ipykernel under
 * `highwater python`, so that `%load_ext highwater` and `%%highwater` work.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { HighwaterError } from '../errors.js';
import type { BundlePaths } from './paths.js';

export const KERNEL_NAME = 'highwater';
export const KERNEL_DISPLAY_NAME = 'Python 3 with highwater';

/** Where the kernel spec goes: the user's Jupyter data dir, or `<prefix>/share/jupyter`. */
export type KernelLocation = { kind: 'user' } | { kind: 'prefix'; dir: string };

export interface KernelSpec {
  argv: string[];
  display_name: string;
  language: 'python';
  metadata: Record<string, unknown>;
}

/** The kernel.json contents (pure). All paths absolute: Jupyter starts it from anywhere. */
export function kernelSpec(paths: Pick<BundlePaths, 'cli'>, node: string, python: string): KernelSpec {
  return {
    argv: [node, paths.cli, 'python', '--no-browser', '--', python, '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
    display_name: KERNEL_DISPLAY_NAME,
    language: 'python',
    metadata: { debugger: false },
  };
}

/** The Jupyter data dir as jupyter_core finds it on Linux (pure). */
export function userDataDir(env: NodeJS.ProcessEnv, home: string): string {
  if (env.JUPYTER_DATA_DIR) return resolve(env.JUPYTER_DATA_DIR);
  const xdg = env.XDG_DATA_HOME || join(home, '.local', 'share');
  return join(resolve(xdg), 'jupyter');
}

/** `.../kernels/highwater` for a location (pure). */
export function kernelDir(loc: KernelLocation, env: NodeJS.ProcessEnv, home: string): string {
  const data = loc.kind === 'user' ? userDataDir(env, home) : join(resolve(loc.dir), 'share', 'jupyter');
  return join(data, 'kernels', KERNEL_NAME);
}

/** An absolute path for the python executable: as given when it has a `/`, else the first on PATH. */
export function resolvePython(python: string, env: NodeJS.ProcessEnv): string {
  if (python.includes('/')) return isAbsolute(python) ? python : resolve(python);
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const cand = join(resolve(dir), python);
    try {
      accessSync(cand, constants.X_OK);
      return cand;
    } catch {
      // next
    }
  }
  throw new HighwaterError('HW_ERR_CONFIG', `${python} not found on PATH (give the interpreter with --python EXE)`);
}

export interface InstallOptions {
  location: KernelLocation;
  /** Interpreter, as given (--python or HIGHWATER_PYTHON). */
  python: string;
  paths: BundlePaths;
  node: string;
  env: NodeJS.ProcessEnv;
  say: (line: string) => void;
}

/** Writes the kernel spec; returns its directory. */
export function installKernel(opts: InstallOptions): string {
  const python = resolvePython(opts.python, opts.env);
  const check = spawnSync(python, ['-c', 'import ipykernel'], { stdio: 'ignore', timeout: 60_000 });
  if (check.error) throw new HighwaterError('HW_ERR_CONFIG', `cannot run ${python}: ${check.error.message}`);
  if (check.status !== 0) {
    opts.say(`warning: ${python} cannot import ipykernel; install it there (pip install ipykernel) before using the kernel`);
  }
  const dir = kernelDir(opts.location, opts.env, homedir());
  const spec = kernelSpec(opts.paths, opts.node, python);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'kernel.json'), JSON.stringify(spec, null, 2) + '\n');
  } catch (e) {
    throw new HighwaterError('HW_ERR_OUTPUT_UNWRITABLE', `cannot write the kernel spec in ${dir}: ${(e as Error).message}`, { cause: e });
  }
  return dir;
}
