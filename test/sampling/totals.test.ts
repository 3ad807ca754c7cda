// Sampling mode's totals without the live-block table: every heap block is
// counted by the allocator's own size (malloc_usable_size) at its allocation
// and its free, so `current` and `peak` move by exactly the usable bytes of
// what the program keeps. The fixture computes those sums itself with ctypes
// and reads the shim's totals (hw_stat) around each step.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { freshDir, repoRoot } from '../helpers/cli.js';
import { fixture } from './helpers.js';

const pythons = ['3.8', '3.11', '3.13'].map((v) => `${process.env.HOME}/.pyenv/versions/${v}`);

function run(python: string, rate: number): { parent: Record<string, number>; child: Record<string, number> } {
  const runDir = freshDir('hw-sampling-totals-');
  const config = { ...loadConfig({}, {}), sampleRate: rate };
  const env = childEnv({ ...process.env }, bundlePaths(repoRoot), config, runDir, 'python', process.execPath);
  const r = spawnSync(python, [fixture('totals.py')], { cwd: repoRoot, env, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number> & { who: string });
  return { parent: lines.find((l) => l.who === 'parent')!, child: lines.find((l) => l.who === 'child')! };
}

const pythonBin = (prefix: string) => {
  const found = spawnSync('sh', ['-c', `ls -d ${prefix}*/bin/python3 | head -1`], { encoding: 'utf8' }).stdout.trim();
  return found;
};

describe('sampling mode: totals stay exact without the table (256 KiB)', () => {
  for (const prefix of pythons) {
    const python = pythonBin(prefix);
    it.skipIf(!python)(
      `${prefix.split('/').at(-1)}: current and peak are the usable bytes live; a fork child never goes below zero`,
      () => {
        const { parent: p, child: k } = run(python, 256 * 1024);
        // Growth from the start of tracking: current and peak moved by the usable bytes of every block.
        expect(p.c_grown - p.c0).toBe(p.grown);
        expect(p.p_grown - p.c0).toBe(p.grown);
        expect(p.grown).toBeGreaterThan(20000 * 24);
        // Blocks from before tracking: their frees take nothing off.
        expect(p.c_pre_freed).toBe(p.c_grown);
        // After frees, reallocs and 4 threads: what is live, exactly.
        expect(p.c1 - p.c0).toBe(p.kept);
        // Everything freed (after the fork): exactly the kept bytes go.
        expect(p.cf - p.c2).toBe(p.kept);
        expect(p.child_status).toBe(0);
        // The child frees every block it inherited: not counted here, never below zero.
        expect(k.low).toBeGreaterThanOrEqual(0);
        expect(k.k1).toBeGreaterThanOrEqual(k.k0);
        expect(k.low).toBe(k.k0); // the frees of inherited blocks took nothing off
        expect(k.k2 - k.k1).toBe(k.own);
        expect(k.k3).toBe(k.k1);
      },
      120_000,
    );
  }
});
