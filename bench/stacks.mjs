#!/usr/bin/env node
// How stacks are read, per CPython: the program alone (plain), under the shim
// (exact, and sampled at 256 KiB), under the shim with the profile callback
// forced (HIGHWATER_STACKS=profile: what 3.8 - 3.10 used before the
// frame-evaluation hook), and, when HIGHWATER_BENCH_BASE is the root of
// another checkout with a built shim, under that shim (before/after).
// Medians of CPU time (user + sys), runs interleaved; and of user time
// alone: on this VM deep-stack's system time (the interpreter's data-stack
// chunks mapped and unmapped at every descent, each munmap a TLB shootdown)
// is a third to a half of the run and moves by ±30 % between identical runs.
//   node bench/stacks.mjs [runs] [workload...]     (default: deep-stack pystone lots-of-peaks)
//   deep-stack@N runs deep-stack N frames deep with as many allocations as
//   at 400 (HIGHWATER_BENCH_DEPTH): deep-stack@4 deep-stack@400 says what
//   depth itself costs, apart from what each allocation costs.
//   HIGHWATER_BENCH_PYTHONS=3.10,3.13 picks interpreters (under ~/.pyenv/versions, and HIGHWATER_TEST_PYTHONS)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const base = process.env.HIGHWATER_BENCH_BASE;
const runs = Number(process.argv[2] ?? 3);
const names = process.argv.length > 3 ? process.argv.slice(3) : ['deep-stack', 'pystone', 'lots-of-peaks'];
const files = { 'deep-stack': 'deep_stack.py', pystone: 'pystone.py', 'lots-of-peaks': 'lots_of_peaks.py' };
const work = mkdtempSync(join(tmpdir(), 'hw-bench-stacks-'));

const pyenv = join(homedir(), '.pyenv', 'versions');
const wanted = process.env.HIGHWATER_BENCH_PYTHONS?.split(',');
// HIGHWATER_TEST_PYTHONS adds interpreters outside pyenv, as for the tests
// (Debian's 3.14 and 3.15: .ci/debian-pythons.sh).
const extra = (process.env.HIGHWATER_TEST_PYTHONS ?? '')
  .split(',')
  .filter(Boolean)
  .map((exe) => ({ version: spawnSync(exe, ['-c', 'import platform; print(platform.python_version())'], { encoding: 'utf8' }).stdout.trim(), exe }));
const pythons = [...(existsSync(pyenv) ? readdirSync(pyenv).sort() : []).map((v) => ({ version: v, exe: join(pyenv, v, 'bin', 'python3') })), ...extra]
  .filter(({ version }) => /^3\.(8|9|1[0-5])\./.test(version) && (!wanted || wanted.some((w) => version.startsWith(`${w}.`))))
  .filter((p) => existsSync(p.exe));

function cpuMs(exe, args, env) {
  const r = spawnSync('/usr/bin/time', ['-f', 'HWCPU %U %S', exe, ...args], {
    env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${exe} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const m = /HWCPU ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (!m) throw new Error(`no CPU time in ${r.stderr}`);
  return { cpu: (Number(m[1]) + Number(m[2])) * 1000, user: Number(m[1]) * 1000 };
}
const shimEnv = (at, extra = {}) => ({
  LD_PRELOAD: join(at, 'native', 'build', 'libhighwater.so'),
  PYTHONPATH: `${join(at, 'native', 'python', 'bootstrap')}:${join(at, 'native', 'python')}`,
  HIGHWATER_RUN_DIR: mkdtempSync(join(work, 'rd-')),
  ...extra,
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const variants = {
  plain: null,
  exact: () => shimEnv(root),
  'sampled-256K': () => shimEnv(root, { HIGHWATER_SAMPLE_RATE: '262144' }),
  'profile-cb': () => shimEnv(root, { HIGHWATER_STACKS: 'profile' }),
  ...(base ? { base: () => shimEnv(base) } : {}),
  ...(base ? { 'base-sampled-256K': () => shimEnv(base, { HIGHWATER_SAMPLE_RATE: '262144' }) } : {}),
};
// HIGHWATER_BENCH_VARIANTS=sampled-256K,base-sampled-256K keeps only those (plain always runs).
const only = process.env.HIGHWATER_BENCH_VARIANTS?.split(',');
if (only) for (const k of Object.keys(variants)) if (k !== 'plain' && !only.includes(k)) delete variants[k];
console.log(`${runs} runs each, medians of CPU time (user + sys) and of user time alone, interleaved; ratios to plain`);
console.log(['CPython', 'workload', 'plain ms', ...Object.keys(variants).slice(1), '| user: plain ms', ...Object.keys(variants).slice(1)].join('\t'));
// Every name checked before the first run; the depth's range is the workload's to check.
const workloads = names.map((name) => {
  const [file, depth] = name.split('@');
  if (!files[file] || (depth !== undefined && file !== 'deep-stack')) throw new Error(`no workload ${name}`);
  return { name, args: [join(here, 'workloads', files[file])], depthEnv: depth === undefined ? {} : { HIGHWATER_BENCH_DEPTH: depth } };
});
for (const { version, exe } of pythons) {
  for (const { name, args, depthEnv } of workloads) {
    const t = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
    for (let i = 0; i < runs; i++)
      for (const [k, env] of Object.entries(variants)) t[k].push(cpuMs(exe, args, { ...depthEnv, ...(env === null ? {} : env()) }));
    const row = [version, name];
    for (const part of ['cpu', 'user']) {
      const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v.map((x) => x[part]))]));
      row.push(
        `${part === 'user' ? '| ' : ''}${m.plain.toFixed(0)}`,
        ...Object.keys(variants)
          .slice(1)
          .map((k) => `${(m[k] / m.plain).toFixed(2)}x`),
      );
    }
    console.log(row.join('\t'));
  }
}
