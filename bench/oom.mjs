#!/usr/bin/env node
// OOM catch rate, margin and latency in real memory cgroups.
//   node bench/oom.mjs [runs=5]
// For each OOM case, N runs of `highwater run` inside a fresh 450 MiB memory
// cgroup: how many end in 53 with a complete report (vs 137 from the kernel),
// the MiB still available when it fired (report.json memory.availableBytes),
// and the latency from the trigger (the dump's timeMs) to report.json on disk.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const python = process.env.HIGHWATER_BENCH_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3';
const runs = Number(process.argv[2] ?? 5);
const MiB = 1024 * 1024;
const cases = {
  'gradual leak': ['leak.py'],
  'one enormous allocation': ['huge.py'],
  'two threads leaking': ['two_leaks.py'],
  ballast: ['ballast.py'],
};

function cgroupRoot() {
  if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) return { root: '/sys/fs/cgroup/memory', limitFile: 'memory.limit_in_bytes' };
  return { root: '/sys/fs/cgroup', limitFile: 'memory.max' };
}

const { root: cgRoot, limitFile } = cgroupRoot();
console.log(`cgroup: ${cgRoot}; ${runs} runs per case; limit 450 MiB`);
console.log('case                      53+report  137  other   margin MiB (min/median)   latency ms (median/max)');
for (const [name, [script]] of Object.entries(cases)) {
  let caught = 0;
  let killed = 0;
  let other = 0;
  const margins = [];
  const latencies = [];
  for (let i = 0; i < runs; i++) {
    const cg = join(cgRoot, `hw-bench-${process.pid}-${i}`);
    mkdirSync(cg);
    writeFileSync(join(cg, limitFile), String(450 * MiB));
    const out = mkdtempSync(join(tmpdir(), 'hw-oom-bench-'));
    const cmd = `echo $$ > ${cg}/cgroup.procs && exec '${process.execPath}' '${join(root, 'bin', 'highwater.js')}' run -o '${out}' --no-browser -- '${python}' '${join(root, 'test', 'fixtures', 'python', script)}'`;
    const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HIGHWATER_LOG_LEVEL: 'debug' } });
    const dirs = readdirSync(out).filter((d) => existsSync(join(out, d, 'report.json')));
    if (r.status === 53 && dirs.length === 1) {
      caught++;
      const reportPath = join(out, dirs[0], 'report.json');
      const rep = JSON.parse(readFileSync(reportPath, 'utf8'));
      margins.push(rep.memory.availableBytes / MiB);
      latencies.push(statSync(reportPath).mtimeMs - rep.timeMs);
    } else if (r.status === 137) killed++;
    else other++;
    for (let k = 0; k < 50; k++) {
      try {
        rmdirSync(cg);
        break;
      } catch {
        spawnSync('sleep', ['0.1']);
      }
    }
  }
  const sorted = (xs) => [...xs].sort((a, b) => a - b);
  const med = (xs) => (xs.length ? sorted(xs)[Math.floor(xs.length / 2)] : NaN);
  console.log(
    `${name.padEnd(25)} ${String(caught).padStart(6)}/${runs} ${String(killed).padStart(4)} ${String(other).padStart(6)}` +
      `   ${(sorted(margins)[0] ?? NaN).toFixed(0).padStart(6)} / ${med(margins).toFixed(0).padEnd(14)}` +
      `   ${med(latencies).toFixed(0).padStart(6)} / ${(sorted(latencies).at(-1) ?? NaN).toFixed(0)}`,
  );
}
