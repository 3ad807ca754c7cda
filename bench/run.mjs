#!/usr/bin/env node
// highwater benchmarks: overhead ratios against an uninstrumented run.
//   npm run bench                 (all workloads, 5 runs each)
//   npm run bench -- pystone 3    (one workload, 3 runs)
// Reports, per workload, the median wall time of: the plain run, the program
// under the shim alone (LD_PRELOAD, what the workload pays), and the whole
// `highwater run` (adds Node start-up, the watcher and rendering); plus the
// guard's cost (detection on vs off), the shim's bytes per live allocation
// and the time to render a 100 000-stack report. Not a test: CI does not run it.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const python = process.env.HIGHWATER_BENCH_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3';
const shim = join(root, 'native', 'build', 'libhighwater.so');
const cli = join(root, 'bin', 'highwater.js');
const work = mkdtempSync(join(tmpdir(), 'hw-bench-'));
const lib = join(work, 'libbench.so');
execFileSync('cc', ['-O2', '-shared', '-fPIC', '-o', lib, join(here, 'workloads', 'benchlib.c')]);

const workloads = {
  pystone: [join(here, 'workloads', 'pystone.py')],
  'malloc-heavy': [join(here, 'workloads', 'malloc_heavy.py'), lib],
  'numpy-pipeline': [join(here, 'workloads', 'numpy_pipeline.py')],
  churn: [join(here, 'workloads', 'churn.py')],
  'lots-of-peaks': [join(here, 'workloads', 'lots_of_peaks.py')],
  'deep-stack': [join(here, 'workloads', 'deep_stack.py')],
};
const only = process.argv[2];
const runs = Number(process.argv[3] ?? 5);
const threads = { OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

function time(cmd, args, env) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...threads, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function shimEnv(runDir, extra = {}) {
  return {
    LD_PRELOAD: shim,
    PYTHONPATH: `${join(root, 'native', 'python', 'bootstrap')}:${join(root, 'native', 'python')}`,
    HIGHWATER_RUN_DIR: runDir,
    ...extra,
  };
}

console.log(`python: ${python}; ${runs} runs each, medians in ms`);
console.log('workload        plain    shim  shim-noguard  cli     shim/plain  guard   cli/plain');
for (const [name, args] of Object.entries(workloads)) {
  if (only && only !== name) continue;
  const t = { plain: [], shim: [], noguard: [], cli: [] };
  for (let i = 0; i < runs; i++) {
    // Interleaved, so drift on a shared machine hits every variant alike.
    t.plain.push(time(python, args, {}));
    const rd = mkdtempSync(join(work, 'rd-'));
    t.shim.push(time(python, args, shimEnv(rd)));
    const rd2 = mkdtempSync(join(work, 'rd-'));
    t.noguard.push(time(python, args, shimEnv(rd2, { HIGHWATER_OOM_DETECTION: '0' })));
    const out = mkdtempSync(join(work, 'out-'));
    t.cli.push(time(process.execPath, [cli, 'run', '-o', out, '--no-browser', '--', python, ...args], {}));
  }
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  console.log(
    `${name.padEnd(15)} ${m.plain.toFixed(0).padStart(6)} ${m.shim.toFixed(0).padStart(7)} ${m.noguard.toFixed(0).padStart(13)} ${m.cli.toFixed(0).padStart(6)}` +
      `     ${(m.shim / m.plain).toFixed(2)}x     ${(m.shim / m.noguard).toFixed(2)}x   ${(m.cli / m.plain).toFixed(2)}x`,
  );
}

if (!only || only === 'memory') {
  const rd = mkdtempSync(join(work, 'rd-'));
  // Sizes across several growths of the table, up to 3 million live blocks.
  const sizes = ['10000', '50000', '200000', '700000', '1000000', '1500000', '3000000'];
  const r = spawnSync(python, [join(here, 'workloads', 'live_allocations.py'), lib, ...sizes], {
    env: { ...process.env, ...shimEnv(rd) },
    encoding: 'utf8',
  });
  console.log(`shim memory per live allocation:\n${r.stdout.trim()}`);
}

if (!only || only === 'render') {
  // A synthetic dump with 100 000 distinct stacks, rendered by the real renderer.
  const dumpDir = mkdtempSync(join(work, 'dump-'));
  const lines = [
    JSON.stringify({
      type: 'header',
      format: 'highwater-dump',
      version: 1,
      pid: 1,
      trigger: 'exit',
      oomReason: null,
      timeMs: Date.now(),
      python: '3.11.7',
      argv: ['python', 'gen.py'],
      cwd: '/',
      peakBytes: 0,
      currentBytes: 0,
      memory: { source: 'none', limitBytes: 0, usageBytes: 0, workingSetBytes: 0, hostAvailableBytes: 0, availableBytes: 0, swapBytes: 0, floorBytes: 0 },
    }),
  ];
  const funcs = 500;
  for (let i = 0; i < funcs; i++) lines.push(JSON.stringify({ type: 'func', id: i, file: `/src/mod${i % 50}.py`, name: `fn_${i}` }));
  let peak = 0;
  let x = 12345;
  for (let s = 0; s < 100_000; s++) {
    const depth = 4 + (s % 12);
    const frames = [];
    for (let d = 0; d < depth; d++) {
      x = (x * 1103515245 + 12345) >>> 0;
      frames.push([x % funcs, 1 + (x % 400)]);
    }
    const bytes = 1024 + (x % 1_000_000);
    peak += bytes;
    lines.push(JSON.stringify({ type: 'stack', snapshot: 'peak', bytes, frames }));
  }
  lines[0] = lines[0].replace('"peakBytes":0', `"peakBytes":${peak}`);
  lines.push(JSON.stringify({ type: 'end', funcs, stacks: 100_000, sources: 0 }));
  const dump = join(dumpDir, 'big.dump');
  writeFileSync(dump, lines.join('\n') + '\n');
  const { renderDumpFile } = await import(join(root, 'dist', 'report', 'index.js'));
  const out = join(work, 'render-out');
  mkdirSync(out);
  const t0 = performance.now();
  await renderDumpFile(dump, out, { timestampedSubdir: true });
  console.log(`render 100 000 distinct stacks: ${(performance.now() - t0).toFixed(0)} ms`);
}
