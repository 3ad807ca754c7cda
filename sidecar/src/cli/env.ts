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
export const THREAD_POOL_VARS = [
  'OMP_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'MKL_NUM_THREADS',
  'NUMEXPR_NUM_THREADS',
  'BLOSC_NTHREADS',
] as const;

export function childEnv(
  base: NodeJS.ProcessEnv,
  paths: BundlePaths,
  cfg: Pick<Config, 'oomDetection' | 'minAvailable'> & Partial<Pick<Config, 'limitThreads' | 'sampleRate'>>,
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
