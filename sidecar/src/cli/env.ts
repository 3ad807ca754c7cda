/** The child's environment (pure): shim preload, bootstrap, run dir, sampling, thread-pool limits. */
import type { Config } from '../config/config.js';
import { formatMinAvailable } from '../config/size.js';
import type { BundlePaths } from './paths.js';

/**
 * The thread-pool *defaults* of BLAS (OpenBLAS, MKL), OpenMP, numexpr and
 * BLOSC. Each only sets the pool's starting size: the program can still ask
 * for more later (threadpoolctl, numexpr.set_num_threads). Caps such as
 * NUMEXPR_MAX_THREADS or OMP_THREAD_LIMIT are never set: they would change
 * what the program's own calls do.
 */
export const THREAD_POOL_VARS = ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS', 'BLOSC_NTHREADS'] as const;

export function childEnv(
  base: NodeJS.ProcessEnv,
  paths: BundlePaths,
  cfg: Pick<Config, 'oomDetection' | 'minAvailable'> & Partial<Pick<Config, 'limitThreads' | 'sampleRate' | 'children'>>,
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
  // --no-children: the shim keeps children untracked (docs/protocol.md).
  if (cfg.children === false) env.HIGHWATER_CHILDREN = '0';
  else if (cfg.children === true) delete env.HIGHWATER_CHILDREN;
  if (cfg.sampleRate) env.HIGHWATER_SAMPLE_RATE = String(cfg.sampleRate);
  else delete env.HIGHWATER_SAMPLE_RATE;
  // Off by default: the pool's threads allocate on behalf of the Python line
  // that calls into the library, but limiting them slows BLAS-bound jobs
  // (docs/configuration.md has the numbers). With --limit-threads, one thread
  // by default, unless the user chose a size. In API mode (and so in the
  // Jupyter kernel) only profile() limits them, for its own duration, as Fil
  // does.
  if (mode === 'run' && cfg.limitThreads) for (const v of THREAD_POOL_VARS) if (base[v] === undefined) env[v] = '1';
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
