/** The child's environment (pure): shim preload, bootstrap, run dir, thread-pool limits. */
import type { Config } from '../config/config.js';
import { formatMinAvailable } from '../config/size.js';
import type { BundlePaths } from './paths.js';

/** BLAS/OpenMP/numexpr/BLOSC pools limited to one thread, as Fil does. */
export const THREAD_POOL_VARS = [
  'OMP_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'MKL_NUM_THREADS',
  'NUMEXPR_NUM_THREADS',
  'NUMEXPR_MAX_THREADS',
  'BLOSC_NTHREADS',
  'VECLIB_MAXIMUM_THREADS',
] as const;

export function childEnv(
  base: NodeJS.ProcessEnv,
  paths: BundlePaths,
  cfg: Pick<Config, 'oomDetection' | 'minAvailable'>,
  runDir: string,
  mode: 'run' | 'python',
  nodePath: string,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  const oldPreload = base.LD_PRELOAD ?? '';
  env.LD_PRELOAD = oldPreload ? `${paths.shim}:${oldPreload}` : paths.shim;
  env.HIGHWATER_ORIG_LD_PRELOAD = oldPreload;
  const pp = [paths.bootstrap, paths.pythonPackage];
  if (base.PYTHONPATH) pp.push(base.PYTHONPATH);
  env.PYTHONPATH = pp.join(':');
  env.HIGHWATER_RUN_DIR = runDir;
  env.HIGHWATER_MODE = mode;
  env.HIGHWATER_OOM_DETECTION = cfg.oomDetection ? '1' : '0';
  env.HIGHWATER_MIN_AVAILABLE = formatMinAvailable(cfg.minAvailable);
  env.HIGHWATER_CLI = paths.cli;
  env.HIGHWATER_NODE = nodePath;
  // Whole-program profiling limits the pools for the whole run. In API mode
  // (and so in the Jupyter kernel) only profile() limits them, for its own
  // duration, as Fil does: the rest of the program runs as it normally would.
  if (mode === 'run') for (const v of THREAD_POOL_VARS) env[v] = '1';
  return env;
}

/**
 * The child's environment as bytes: every variable of this process's own
 * environment (/proc/self/environ, `raw`) that `env` leaves as Node decoded
 * it keeps its original bytes (Node decodes values as UTF-8, lossily);
 * variables `env` sets or changes (highwater's own) take their new value.
 */
export function rawEnvironment(raw: readonly Buffer[], decoded: NodeJS.ProcessEnv, env: NodeJS.ProcessEnv): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  for (const entry of raw) {
    const eq = entry.indexOf(0x3d); // '='
    if (eq <= 0) continue;
    const key = entry.subarray(0, eq).toString('utf8');
    if (seen.has(key)) continue;
    const value = env[key];
    if (value === undefined) continue;
    seen.add(key);
    out.push(value === decoded[key] ? entry : Buffer.from(`${key}=${value}`));
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && !seen.has(key)) out.push(Buffer.from(`${key}=${value}`));
  }
  return out;
}

/** The block highwater-init --exec-from-fd reads: counts and NUL-terminated fields. */
export function execBlock(argv: readonly Buffer[], env: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`${argv.length}\0`)];
  for (const a of argv) parts.push(a, Buffer.from([0]));
  parts.push(Buffer.from(`${env.length}\0`));
  for (const e of env) parts.push(e, Buffer.from([0]));
  return Buffer.concat(parts);
}
