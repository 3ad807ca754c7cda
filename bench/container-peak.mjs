#!/usr/bin/env node
// How exact the container peak is (issue 12): runs a fork Pool(4) whose
// workers hold 8, 16, 24 and 32 MiB at once (test/fixtures/python/
// multiprocess/pool_workers.py) under the shim, then compares the container
// file's peakBytes (the highest published sum) with the sum of every
// process's part at that peak (its exact bytes, from its state file), against
// the bound N processes x 1 MiB quantum.
//   node bench/container-peak.mjs [runs]   (default 5)
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const python = process.env.HIGHWATER_BENCH_PYTHON ?? '/root/.pyenv/versions/3.11.7/bin/python3';
const script = join(root, 'test', 'fixtures', 'python', 'multiprocess', 'pool_workers.py');
const runs = Number(process.argv[2] ?? 5);
const MiB = 1024 * 1024;

function header(path) {
  const fd = openSync(path, 'r');
  const b = Buffer.alloc(4096);
  readSync(fd, b, 0, 4096, 0);
  closeSync(fd);
  const u = (o) => Number(b.readBigUInt64LE(o));
  const i = (o) => Number(b.readBigInt64LE(o));
  return { current: i(40), start: u(2416), ended: u(2424), end: u(2432), cpeakEpoch: u(2440), cpeak: i(2448) };
}

console.log('run  peakBytes(MiB)  sum of parts(MiB)  |diff|(KiB)  N  bound N x 1 MiB');
for (let r = 0; r < runs; r++) {
  const rd = mkdtempSync(join(tmpdir(), 'hw-bench-cpeak-'));
  const env = {
    ...process.env,
    LD_PRELOAD: join(root, 'native', 'build', 'libhighwater.so'),
    PYTHONPATH: `${join(root, 'native', 'python', 'bootstrap')}:${join(root, 'native', 'python')}`,
    HIGHWATER_RUN_DIR: rd,
  };
  const p = spawnSync(python, [script, 'fork'], { env, encoding: 'utf8' });
  if (p.status !== 0) throw new Error(`exit ${p.status}: ${p.stderr}`);
  const c = readFileSync(join(rd, 'hw-container'));
  const peak = Number(c.readBigInt64LE(128));
  const E = Number(c.readBigUInt64LE(136));
  let sum = 0;
  let n = 0;
  for (const f of readdirSync(rd).filter((x) => /^hw-\d+\.state$/.test(x))) {
    const h = header(join(rd, f));
    if (!(h.start < E && (h.ended === 0 || h.end >= E))) continue;
    n++;
    sum += h.cpeakEpoch === E ? h.cpeak : h.current;
  }
  console.log(
    `${String(r + 1).padEnd(4)} ${(peak / MiB).toFixed(2).padStart(14)}  ${(sum / MiB).toFixed(2).padStart(17)}  ${(Math.abs(peak - sum) / 1024).toFixed(0).padStart(11)}  ${n}  ${n} MiB`,
  );
  rmSync(rd, { recursive: true, force: true });
}
