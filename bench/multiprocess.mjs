#!/usr/bin/env node
// Multi-process cost (issue 12): starting a tracked child vs an untracked one,
// and a 4-worker pool workload, plain vs under the shim with children tracked.
//   node bench/multiprocess.mjs [runs]      (default 3; medians)
// Variants: plain (no highwater), root-only (the shim, HIGHWATER_CHILDREN=0:
// the children run untracked), children (the default: every child tracked).
// HIGHWATER_BENCH_BASE=<a built checkout> adds base-children: the same as
// children with that checkout's shim and Python package (before/after).
// Not a test: CI does not run it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const python = process.env.HIGHWATER_BENCH_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3';
const base = process.env.HIGHWATER_BENCH_BASE;
const runs = Number(process.argv[2] ?? 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function env(variant, runDir) {
  if (variant === 'plain') return { ...process.env };
  const from = variant === 'base-children' ? base : root;
  return {
    ...process.env,
    LD_PRELOAD: join(from, 'native', 'build', 'libhighwater.so'),
    PYTHONPATH: `${join(from, 'native', 'python', 'bootstrap')}:${join(from, 'native', 'python')}`,
    HIGHWATER_RUN_DIR: runDir,
    HIGHWATER_CHILDREN: variant === 'root-only' ? '0' : '1',
  };
}

/** Wall ms of the whole run, and what it printed. */
function once(args, variant) {
  const runDir = mkdtempSync(join(tmpdir(), 'hw-bench-mp-'));
  const t0 = process.hrtime.bigint();
  const r = spawnSync(python, args, { env: env(variant, runDir), cwd: join(here, 'workloads'), encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  rmSync(runDir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`${args.join(' ')} (${variant}) exited ${r.status}: ${r.stderr}`);
  return { ms, out: r.stdout.trim() };
}

const variants = ['plain', 'root-only', 'children', ...(base ? ['base-children'] : [])];
const fmt = (m) => variants.map((v) => `${v} ${m[v].toFixed(0)}`).join('  ');
console.log(`python: ${python}; ${runs} runs each, medians`);
console.log('\nchild start, ms per child (8 children per run): wall, and CPU (user + system, less sensitive to a loaded machine)');
for (const how of ['subprocess', 'spawn']) {
  const wall = Object.fromEntries(variants.map((v) => [v, []]));
  const cpu = Object.fromEntries(variants.map((v) => [v, []]));
  for (let i = 0; i < runs; i++)
    for (const v of variants) {
      const [w, c] = once(['mp_child_start.py', how, '8'], v).out.split(' ').map(Number);
      wall[v].push(w);
      cpu[v].push(c);
    }
  const mw = Object.fromEntries(variants.map((v) => [v, median(wall[v])]));
  const mc = Object.fromEntries(variants.map((v) => [v, median(cpu[v])]));
  const vs = (m) => (base ? `, base ${(m['base-children'] / m['root-only']).toFixed(2)}x` : '');
  console.log(`${how.padEnd(11)} wall: ${fmt(mw)}  tracked/untracked ${(mw.children / mw['root-only']).toFixed(2)}x${vs(mw)}`);
  console.log(`${''.padEnd(11)} cpu:  ${fmt(mc)}  tracked/untracked ${(mc.children / mc['root-only']).toFixed(2)}x${vs(mc)}`);
}
console.log('\n4-worker pool, allocation-heavy: wall ms and CPU ms of the whole job');
for (const method of ['fork', 'spawn']) {
  const wall = Object.fromEntries(variants.map((v) => [v, []]));
  const cpu = Object.fromEntries(variants.map((v) => [v, []]));
  for (let i = 0; i < runs; i++)
    for (const v of variants) {
      const r = once(['mp_pool.py', method], v);
      wall[v].push(r.ms);
      cpu[v].push(Number(r.out.split(' ')[1]));
    }
  const mw = Object.fromEntries(variants.map((v) => [v, median(wall[v])]));
  const mc = Object.fromEntries(variants.map((v) => [v, median(cpu[v])]));
  const vs = (m) => (base ? `, base ${(m['base-children'] / m.plain).toFixed(2)}x` : '');
  console.log(`pool ${method.padEnd(6)} wall: ${fmt(mw)}  children/plain ${(mw.children / mw.plain).toFixed(2)}x${vs(mw)}`);
  console.log(`${''.padEnd(11)} cpu:  ${fmt(mc)}  children/plain ${(mc.children / mc.plain).toFixed(2)}x${vs(mc)}`);
}
