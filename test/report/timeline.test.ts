/**
 * The timeline: parsing untrusted input (a dump line, a state-file region),
 * and the shim's bounded ring on a real program that moves memory 20 000 times.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { timelineFromDumpLine, timelineFromState } from '../../sidecar/src/report/timeline-data.js';
import { freshDir, MiB, readReport, reportDirs, runProfiled } from '../helpers/cli.js';

function region(capacity: number, samples: number[][], count = samples.length): Buffer {
  const off = 4096;
  const buf = Buffer.alloc(off + 64 + capacity * 40);
  buf.writeBigInt64LE(BigInt(capacity), off);
  buf.writeBigInt64LE(BigInt(count), off + 8);
  buf.writeBigInt64LE(50n, off + 16);
  buf.writeBigInt64LE(2000n, off + 24);
  buf.writeBigInt64LE(300n, off + 32);
  samples.forEach((s, i) => s.forEach((v, k) => buf.writeBigInt64LE(BigInt(v), off + 64 + i * 40 + k * 8)));
  return buf;
}

describe('timeline input', () => {
  test('a state-file region is read, sorted by time; nonsense is dropped, not thrown', () => {
    const t = timelineFromState(
      region(8, [
        [2000, 300, 0, 0, 0],
        [1000, 100, 5, 6, 7],
      ]),
      4096,
    )!;
    expect(t).toEqual({
      fields: ['timeMs', 'trackedBytes', 'workingSetBytes', 'limitBytes', 'floorBytes'],
      intervalMs: 50,
      peakMs: 2000,
      peakBytes: 300,
      samples: [
        [1000, 100, 5, 6, 7],
        [2000, 300, 0, 0, 0],
      ],
    });
    expect(timelineFromState(region(8, []), 0)).toBeUndefined(); // offset 0: an older shim
    expect(timelineFromState(region(8, [[1, 1, 1, 1, 1]], 9), 4096)).toBeUndefined(); // count > capacity
    expect(timelineFromState(region(100000, []), 4096)).toBeUndefined(); // capacity beyond the shim's
    expect(timelineFromState(region(8, [[1, -5, 1, 1, 1]]), 4096)).toBeUndefined(); // negative bytes
    expect(timelineFromState(region(8, [[1, 1, 1, 1, 1]]).subarray(0, 4096 + 64 + 20), 4096)).toBeUndefined(); // cut short
  });

  test('a malformed dump line is HW_ERR_DUMP_INVALID naming the line', () => {
    const ok = { intervalMs: 50, peakMs: 1, peakBytes: 1, samples: [[1, 2, 3, 4, 5]] };
    expect(timelineFromDumpLine(ok, 9).samples).toEqual([[1, 2, 3, 4, 5]]);
    for (const bad of [
      { ...ok, samples: [[1, 2, 3]] },
      { ...ok, samples: [[1, 2, 3, 4, -5]] },
      { ...ok, samples: new Array(4097).fill([1, 1, 1, 1, 1]) },
      { ...ok, peakMs: 'soon' },
    ]) {
      let err: unknown;
      try {
        timelineFromDumpLine(bad, 9);
      } catch (e) {
        err = e;
      }
      expect(isHighwaterError(err, 'HW_ERR_DUMP_INVALID') && err.message.startsWith('raw dump line 9: timeline')).toBe(true);
    }
  });
});

test('the shim keeps at most 4096 samples covering the whole run, spacing doubled as it halves', async () => {
  const script = join(freshDir('hw-ring-'), 'churn.py');
  writeFileSync(
    script,
    [
      'import time',
      't0 = time.time()',
      'for i in range(10000):',
      '    b = bytearray(20 * 1024 * 1024)',
      '    del b',
      'hold = bytearray(64 * 1024 * 1024)',
      'time.sleep(0.3)',
      'print(f"T {t0 * 1000:.0f} {time.time() * 1000:.0f}", flush=True)',
      '',
    ].join('\n'),
  );
  const r = await runProfiled([script]);
  expect(r.code, r.stderr).toBe(0);
  const [, start, end] = /T (\d+) (\d+)/.exec(r.stdout)!.map(Number);
  const tl = readReport(reportDirs(r.outDir)[0]!).timeline!;
  // 20 000 moves of 20 MiB each want a sample: the ring halved at least twice.
  expect(tl.samples.length).toBeLessThanOrEqual(4096);
  expect(tl.samples.length).toBeGreaterThan(1000);
  expect(tl.intervalMs).toBeGreaterThanOrEqual(200);
  const times = tl.samples.map((s) => s[0]);
  expect(times).toEqual([...times].sort((a, b) => a - b));
  expect(times[0]!).toBeLessThanOrEqual(start! + 50); // the start of the run is still there
  expect(times.at(-1)!).toBeGreaterThanOrEqual(end! - 50); // and its end
  expect(tl.samples.at(-1)![1]).toBeGreaterThanOrEqual(64 * MiB); // the last sample holds `hold`
  expect(tl.samples.some((s) => s[1] >= 20 * MiB && s[0] < end! - 300)).toBe(true); // the churn is on the curve
}, 60_000);
