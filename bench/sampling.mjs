#!/usr/bin/env node
// Sampling mode: the program under the shim, exact vs --sample-rate, against
// the plain run. Medians of CPU time, interleaved runs.
//   node bench/sampling.mjs [runs] [rates...]     (rates in bytes; default 65536 262144 1048576)
// HIGHWATER_BENCH_BASELINE=<another checkout, built> adds its shim's columns
// (b:exact, b:<rate>), interleaved with these runs: a before/after taken on a
// loaded machine under the same load.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const python = process.env.HIGHWATER_BENCH_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3';
const shim = join(root, 'native', 'build', 'libhighwater.so');
const work = mkdtempSync(join(tmpdir(), 'hw-bench-sampling-'));
const lib = join(work, 'libbench.so');
execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', lib, join(here, 'workloads', 'benchlib.c')]);
const runs = Number(process.argv[2] ?? 5);
const rates = process.argv.length > 3 ? process.argv.slice(3).map(Number) : [65536, 262144, 1048576];

const workloads = {
  pystone: [join(here, 'workloads', 'pystone.py')],
  'malloc-heavy': [join(here, 'workloads', 'malloc_heavy.py'), lib],
  'numpy-pipeline': [join(here, 'workloads', 'numpy_pipeline.py')],
  churn: [join(here, 'workloads', 'churn.py')],
  'lots-of-peaks': [join(here, 'workloads', 'lots_of_peaks.py')],
  // bench/workloads/deep_stack.py once the fidelity branch's is merged; until then a similar one.
  'deep-stack': [
    existsSync(join(here, 'workloads', 'deep_stack.py'))
      ? join(here, 'workloads', 'deep_stack.py')
      : join(root, 'test', 'sampling', 'fixtures', 'deep_stack.py'),
  ],
};
const only = process.env.HIGHWATER_BENCH_ONLY;
const threads = { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

// CPU time (user + sys) of the program, from /usr/bin/time: on a machine
// shared with other jobs it moves far less than wall time (the workloads are
// single-threaded: the pools are held at one thread above).
function time(args, env) {
  const r = spawnSync('/usr/bin/time', ['-f', 'HWCPU %U %S', python, ...args], {
    env: { ...process.env, ...threads, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const m = /HWCPU ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (!m) throw new Error(`no CPU time in ${r.stderr}`);
  return (Number(m[1]) + Number(m[2])) * 1000;
}
const baseline = process.env.HIGHWATER_BENCH_BASELINE;
const shimEnv = (extra, from = root) => ({
  LD_PRELOAD: from === root ? shim : join(from, 'native', 'build', 'libhighwater.so'),
  PYTHONPATH: `${join(from, 'native', 'python', 'bootstrap')}:${join(from, 'native', 'python')}`,
  HIGHWATER_RUN_DIR: mkdtempSync(join(work, 'rd-')),
  ...extra,
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`python: ${python}; ${runs} runs each, medians of CPU time (user + sys); shim / plain`);
const cols = ['exact', ...rates.map(String)];
const allCols = baseline ? [...cols, ...cols.map((c) => `b:${c}`)] : cols;
const label = (c) => (c.replace(/^b:/, '') === 'exact' ? c : `${c.startsWith('b:') ? 'b:' : ''}${Number(c.replace(/^b:/, '')) / 1024}KiB`);
console.log(`workload    plain CPU ms ${allCols.map((c) => label(c).padStart(9)).join('')}`);
for (const [name, args] of Object.entries(workloads)) {
  if (only && only !== name) continue;
  const own = { exact: {}, ...Object.fromEntries(rates.map((r) => [r, { HIGHWATER_SAMPLE_RATE: String(r) }])) };
  const variants = { plain: null, ...Object.fromEntries(Object.entries(own).map(([k, e]) => [k, [e, root]])) };
  if (baseline) for (const [k, e] of Object.entries(own)) variants[`b:${k}`] = [e, baseline];
  const t = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  for (let i = 0; i < runs; i++) for (const [k, v] of Object.entries(variants)) t[k].push(time(args, v === null ? {} : shimEnv(...v)));
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  const ratio = (k) => `${(m[k] / m.plain).toFixed(2)}x`.padStart(9);
  console.log(`${name.padEnd(15)} ${m.plain.toFixed(0).padStart(8)} ${allCols.map(ratio).join('')}`);
}
