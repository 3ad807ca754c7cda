import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import type { Frame, ProfileData, Stack } from '../../sidecar/src/report/model.js';
import { renderReport } from '../../sidecar/src/report/render.js';

/** Deterministic generator (mulberry32) so the measured case is the same every run. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generateStacks(count: number): Stack[] {
  const rand = rng(42);
  const frames: Frame[] = [];
  for (let i = 0; i < 3000; i++) {
    frames.push({
      file: `/app/pkg${i % 40}/module_${i % 300}.py`,
      line: 1 + ((i * 7) % 900),
      function: `function_${i}`,
      code: `result_${i} = compute(data[${i}], axis=${i % 3})`,
    });
  }
  const seen = new Set<string>();
  const stacks: Stack[] = [];
  while (stacks.length < count) {
    // Shared prefixes (a few roots, branching deeper) like real programs.
    const depth = 6 + Math.floor(rand() * 14);
    const ids: number[] = [];
    for (let d = 0; d < depth; d++) ids.push(Math.floor(rand() * Math.min(3000, 4 * (d + 1) ** 2)));
    const key = ids.join(',');
    if (seen.has(key)) continue;
    seen.add(key);
    // Heavy-tailed sizes: a few big stacks, a long tail of small ones.
    const bytes = Math.max(16, Math.floor(2 ** 30 * rand() ** 8));
    stacks.push({ bytes, frames: ids.map((i) => frames[i]!) });
  }
  return stacks;
}

test('100 000 distinct stacks render all five files well under 10 s', async () => {
  const stacks = generateStacks(100_000);
  const peakBytes = stacks.reduce((a, s) => a + s.bytes, 0);
  const data: ProfileData = {
    trigger: 'exit',
    oomReason: null,
    oomAllocation: null,
    peakBytes,
    timeMs: 0,
    process: { pid: 1, argv: ['python', 'big.py'], python: '3.12.0', cwd: '/app' },
    memory: { source: 'none', limitBytes: 0, workingSetBytes: 0, availableBytes: 0, swapBytes: 0 },
    stacks,
    currentStacks: null,
  };
  const out = mkdtempSync(join(tmpdir(), 'hw-perf-'));
  const t0 = performance.now();
  const { dir, report } = await renderReport(data, out);
  const ms = performance.now() - t0;
  const size = (n: string) => statSync(join(dir, n)).size;
  console.log(
    `100k stacks: rendered in ${ms.toFixed(0)} ms; svg ${(size('peak-memory.svg') / 1e6).toFixed(1)} MB, ` +
      `reversed ${(size('peak-memory-reversed.svg') / 1e6).toFixed(1)} MB, report.json ${report.stacks.length} stacks ` +
      `${(size('report.json') / 1e6).toFixed(1)} MB, folded ${(size('peak-memory.folded') / 1e6).toFixed(1)} MB`,
  );
  expect(ms).toBeLessThan(10_000);
  expect(readFileSync(join(dir, 'peak-memory.folded'), 'utf8').split('\n')).toHaveLength(100_001);
  const covered = report.stacks.reduce((a, s) => a + s.bytes, 0);
  expect(covered / peakBytes).toBeGreaterThanOrEqual(0.99);
  // Pruning keeps the SVG openable: far fewer frames than stacks × depth.
  const frames = (readFileSync(join(dir, 'peak-memory.svg'), 'utf8').match(/<g class="f"/g) ?? []).length;
  expect(frames).toBeGreaterThan(100);
  expect(frames).toBeLessThan(100_000);
}, 60_000);
