// The owner thread's plain path (native/shim/owner.c): a program whose main
// thread allocates alone (no locked instructions), then with 4 threads
// allocating and freeing at once (sharing turns permanent), then past every
// earlier peak. `current` and `peak` must be exactly what the program holds
// (the fixture computes it: requested bytes in exact mode, usable bytes under
// sampling), with the plain path on and with HIGHWATER_OWNER_FAST=0.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { freshDir, repoRoot } from '../helpers/cli.js';
import { fixture } from './helpers.js';

const pythonBin = (version: string) =>
  spawnSync('sh', ['-c', `ls -d ${process.env.HOME}/.pyenv/versions/${version}*/bin/python3 | head -1`], { encoding: 'utf8' }).stdout.trim();

function run(python: string, rate: number, fast: boolean): Record<string, number> {
  const runDir = freshDir('hw-owner-');
  const config = { ...loadConfig({}, {}), sampleRate: rate };
  const env = childEnv({ ...process.env }, bundlePaths(repoRoot), config, runDir, 'python', process.execPath);
  if (!fast) env.HIGHWATER_OWNER_FAST = '0';
  else delete env.HIGHWATER_OWNER_FAST;
  const mode = rate ? 'sampling' : 'exact';
  const r = spawnSync(python, [fixture('owner_threads.py'), mode], { cwd: repoRoot, env, encoding: 'utf8', timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim()) as Record<string, number>;
}

describe('the owner thread hands over to the locked path exactly', () => {
  for (const version of ['3.11', '3.12', '3.13']) {
    const python = pythonBin(version);
    for (const rate of [0, 256 * 1024]) {
      for (const fast of [true, false]) {
        it.skipIf(!python)(
          `${version}, ${rate ? 'sampling 256 KiB' : 'exact'}, ${fast ? 'owner fast path' : 'HIGHWATER_OWNER_FAST=0'}`,
          () => {
            const s = run(python, rate, fast);
            // The main thread alone: the plain path ran (or not, with the knob).
            expect(s.fast_alone).toBe(fast ? 1 : 0);
            expect(s.grown_peak).toBe(s.alone);
            expect(s.p_grown).toBe(s.alone);
            expect(s.c_half).toBe(s.half);
            // Four threads with it: exactly what everyone still holds; shared for good.
            expect(s.fast_shared).toBe(0);
            expect(s.shared).toBe(s.expect_shared);
            // A new peak after the hand-over: exact.
            expect(s.c_big).toBe(s.expect_shared + s.big);
            expect(s.p_big).toBe(s.c_big);
          },
          120_000,
        );
      }
    }
  }
});
