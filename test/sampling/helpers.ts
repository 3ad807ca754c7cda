/**
 * Runs a Python script under the shim with the environment `highwater run`
 * builds (sampling rate and seed added) and parses the dump it writes at exit.
 * No Node start-up or rendering per run: the 20-seed tests run many.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../sidecar/src/config/config.js';
import { childEnv } from '../../sidecar/src/cli/env.js';
import { bundlePaths } from '../../sidecar/src/cli/paths.js';
import { parseDump } from '../../sidecar/src/report/dump.js';
import type { ProfileData } from '../../sidecar/src/report/model.js';
import { freshDir, repoRoot } from '../helpers/cli.js';

export const fixture = (name: string) => join(import.meta.dirname, 'fixtures', name);

/** `rate` as the CLI gives it (bytes); `rawRate` instead sets HIGHWATER_SAMPLE_RATE as a user would in a container. */
export function runSampled(python: string, script: string, rate: number, seed?: number, rawRate?: string): ProfileData {
  return runUnderShim(python, script, rate, seed, rawRate).data;
}

export function runUnderShim(
  python: string,
  script: string,
  rate: number,
  seed?: number,
  rawRate?: string,
  overrides: Partial<ReturnType<typeof loadConfig>> = {},
): { data: ProfileData; stderr: string; stdout: string } {
  const runDir = freshDir('hw-sampling-rd-');
  const config = { ...loadConfig({}, {}), ...overrides, sampleRate: rate };
  const base: NodeJS.ProcessEnv = { ...process.env, PYTHONHASHSEED: '0' };
  delete base.HIGHWATER_SAMPLE_SEED;
  if (seed !== undefined) base.HIGHWATER_SAMPLE_SEED = String(seed);
  const env = childEnv(base, bundlePaths(repoRoot), config, runDir, 'run', process.execPath);
  if (rawRate !== undefined) env.HIGHWATER_SAMPLE_RATE = rawRate;
  const r = spawnSync(python, [script], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${r.stderr}`);
  const dumps = readdirSync(runDir).filter((f) => /^hw-\d+-\d+\.dump$/.test(f));
  if (dumps.length !== 1) throw new Error(`expected one dump in ${runDir}, found ${dumps.join(', ')}`);
  return { data: parseDump(readFileSync(join(runDir, dumps[0]!), 'utf8')), stderr: r.stderr, stdout: r.stdout };
}

/** Bytes per line of `file` (innermost frame in that file), at the peak. */
export function bytesPerLine(data: ProfileData, file: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of data.stacks) {
    const f = [...s.frames].reverse().find((x) => x.file.endsWith(file));
    if (f) out.set(f.line, (out.get(f.line) ?? 0) + s.bytes);
  }
  return out;
}

/**
 * Standard deviation of the estimate of `count` allocations of `size` bytes
 * each, sampled at `rate`: each stands for size/p with probability
 * p = 1 - exp(-size/rate), so var = count * size^2 * (1 - p) / p; 0 at or
 * above the rate (exact).
 */
export function expectedStd(size: number, count: number, rate: number): number {
  if (size >= rate) return 0;
  const p = -Math.expm1(-size / rate);
  return Math.sqrt((count * size * size * (1 - p)) / p);
}
