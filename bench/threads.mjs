#!/usr/bin/env node
// What limiting thread pools buys and costs under `highwater run`.
//   node bench/threads.mjs [runs]
// Attribution: bench/workloads/blas_attribution.py (numpy + scipy, OpenBLAS
// from the wheels) with and without --limit-threads: bytes at the peak charged
// to the script's compute lines, to its import lines, and elsewhere.
// Cost: bench/workloads/matmul_pipeline.py (2000x2000 matmuls), plain vs
// `highwater run` vs `highwater run --limit-threads`, medians, interleaved.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, '..', 'bin', 'highwater.js');
const python = process.env.HIGHWATER_BENCH_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3';
const runs = Number(process.argv[2] ?? 5);
const work = mkdtempSync(join(tmpdir(), 'hw-threads-'));
const MiB = 1024 * 1024;

function hwRun(script, flags) {
  const out = mkdtempSync(join(work, 'out-'));
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, 'run', '-o', out, '--no-browser', ...flags, script], {
    env: { ...process.env, HIGHWATER_PYTHON: python },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`highwater run ${script}: ${r.status} ${r.stderr}`);
  const [dir] = readdirSync(out);
  return { ms, report: JSON.parse(readFileSync(join(out, dir, 'report.json'), 'utf8')) };
}

function attribution(script, report) {
  const lines = readFileSync(script, 'utf8').split('\n');
  const kind = (line) => (lines[line - 1]?.includes('# import line') ? 'import' : lines[line - 1]?.includes('# compute line') ? 'compute' : 'other');
  const sum = { compute: 0, import: 0, elsewhere: 0 };
  for (const s of report.stacks) {
    const f = [...s.frames].reverse().find((x) => x.file.endsWith('blas_attribution.py'));
    const k = f ? kind(f.line) : 'elsewhere';
    sum[k === 'other' ? 'elsewhere' : k] += s.bytes;
  }
  return { peak: report.peakBytes, ...sum };
}

const attr = join(here, 'workloads', 'blas_attribution.py');
console.log(`python: ${python}; attribution (MiB at the peak)`);
for (const flags of [['--no-limit-threads'], ['--limit-threads']]) {
  const a = attribution(attr, hwRun(attr, flags).report);
  const f = (x) => (x / MiB).toFixed(1).padStart(7);
  console.log(`${flags[0].padEnd(20)} peak ${f(a.peak)}  compute lines ${f(a.compute)}  import lines ${f(a.import)}  elsewhere ${f(a.elsewhere)}`);
}

const pipe = join(here, 'workloads', 'matmul_pipeline.py');
const t = { plain: [], run: [], limited: [] };
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(python, [pipe], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error('plain run failed');
  t.plain.push(Number(process.hrtime.bigint() - t0) / 1e6);
  t.run.push(hwRun(pipe, ['--no-limit-threads']).ms);
  t.limited.push(hwRun(pipe, ['--limit-threads']).ms);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
console.log(
  `matmul pipeline, medians of ${runs}: plain ${m.plain.toFixed(0)} ms; highwater run ${(m.run / m.plain).toFixed(2)}x; --limit-threads ${(m.limited / m.plain).toFixed(2)}x`,
);
