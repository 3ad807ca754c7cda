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
