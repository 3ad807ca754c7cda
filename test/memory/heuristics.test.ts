import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkOom, DEFAULT_MIN_AVAILABLE, floorBytes, MiB } from '../../sidecar/src/memory/heuristics.js';
import { readReadings, type Readings } from '../../sidecar/src/memory/read.js';

const FX = join(import.meta.dirname, '../fixtures/cgroup');
const roots = (tree: string) => ({ procRoot: join(FX, tree, 'proc'), rootPrefix: join(FX, tree) });
const GiB = 1024 * MiB;
const on = { oomDetection: true, minAvailable: DEFAULT_MIN_AVAILABLE };

function readings(over: Partial<Readings>): Readings {
  return {
    source: 'cgroup-v2',
    limitBytes: 1 * GiB,
    usageBytes: 0,
    inactiveFileBytes: 0,
    workingSetBytes: 0,
    hostAvailableBytes: 30 * GiB,
    hostTotalBytes: 32 * GiB,
    availableBytes: 1 * GiB,
    swapBytes: 0,
    ...over,
  };
}

describe('floorBytes', () => {
  it('100 MiB wins below 5 GiB of total', () => {
    expect(floorBytes(1 * GiB, on)).toBe(100 * MiB);
  });
  it('2 % wins above 5000 MiB', () => {
    expect(floorBytes(32 * GiB, on)).toBe(Math.floor(32 * GiB * 0.02));
  });
  it('only bytes, only percent', () => {
    expect(floorBytes(32 * GiB, { minAvailable: { bytes: 10 * MiB } })).toBe(10 * MiB);
    expect(floorBytes(10 * GiB, { minAvailable: { percent: 5 } })).toBe(Math.floor(10 * GiB * 0.05));
    expect(floorBytes(10 * GiB, { minAvailable: {} })).toBe(0);
  });
});

describe('checkOom', () => {
  it('fine', () => {
    expect(checkOom(readings({}), on)).toEqual({ oom: false, floorBytes: 100 * MiB });
  });
  it('low-available when available < floor', () => {
    const v = checkOom(readings({ availableBytes: 99 * MiB }), on);
    expect(v).toMatchObject({ oom: true, reason: 'low-available', floorBytes: 100 * MiB });
    if (v.oom) expect(v.detail).toMatch(/available 99\.0 MiB < floor 100\.0 MiB/);
  });
  it('active page cache counts as reclaimable: streaming files is not OOM', () => {
    expect(checkOom(readings({ availableBytes: 56 * MiB, activeFileBytes: 200 * MiB }), on).oom).toBe(false);
    expect(checkOom(readings({ availableBytes: 56 * MiB, activeFileBytes: 20 * MiB }), on)).toMatchObject({ oom: true });
  });
  it('available == floor is not OOM', () => {
    expect(checkOom(readings({ availableBytes: 100 * MiB }), on).oom).toBe(false);
  });
  it('the floor is a percentage of the limit, not of the host', () => {
    // limit 10 GiB: floor 2 % = 204.8 MiB; 150 MiB available is low
    expect(checkOom(readings({ limitBytes: 10 * GiB, availableBytes: 150 * MiB }), on).oom).toBe(true);
    // no limit: 2 % of 32 GiB host = 655 MiB
    expect(checkOom(readings({ source: 'host', limitBytes: 0, availableBytes: 600 * MiB }), on).oom).toBe(true);
  });
  it('swap when swap used > available', () => {
    const v = checkOom(readings({ availableBytes: 500 * MiB, swapBytes: 501 * MiB }), on);
    expect(v).toMatchObject({ oom: true, reason: 'swap' });
    expect(checkOom(readings({ availableBytes: 500 * MiB, swapBytes: 500 * MiB }), on).oom).toBe(false);
  });
  it('low-available takes precedence over swap', () => {
    expect(checkOom(readings({ availableBytes: 50 * MiB, swapBytes: 900 * MiB }), on)).toMatchObject({
      reason: 'low-available',
    });
  });
  it("judges by the shim's floor when given one (the shim owns the floor), whatever --min-available says", () => {
    const r = readings({ availableBytes: 300 * MiB });
    expect(checkOom(r, on, 400 * MiB)).toMatchObject({ oom: true, reason: 'low-available', floorBytes: 400 * MiB });
    expect(checkOom(r, { oomDetection: true, minAvailable: { bytes: 500 * MiB } }, 200 * MiB)).toEqual({ oom: false, floorBytes: 200 * MiB });
    expect(checkOom(r, { ...on, oomDetection: false }, 400 * MiB)).toEqual({ oom: false, floorBytes: 0 });
  });
  it('both rules off when detection is disabled', () => {
    const off = { ...on, oomDetection: false };
    expect(checkOom(readings({ availableBytes: 0 }), off)).toEqual({ oom: false, floorBytes: 0 });
    expect(checkOom(readings({ availableBytes: 500 * MiB, swapBytes: 900 * MiB }), off).oom).toBe(false);
  });
  it('v1 fixture readings: fine with the default floor, low with a 500 MiB floor', () => {
    const r = readReadings(4242, roots('v1/machine'));
    expect(checkOom(r, on).oom).toBe(false);
    expect(checkOom(r, { oomDetection: true, minAvailable: { bytes: 520 * MiB } })).toMatchObject({
      oom: true,
      reason: 'low-available',
    });
  });
  it('v1 swap fixture: swap > available with a small limit', () => {
    const r = readReadings(77, roots('v1/swap'));
    expect(checkOom(r, on).oom).toBe(false); // 64 MiB swap < ~135 MiB available
    expect(checkOom({ ...r, availableBytes: 60 * MiB }, { oomDetection: true, minAvailable: { bytes: 1 } })).toMatchObject({
      reason: 'swap',
    });
  });
  it('v2 fixture readings', () => {
    const r = readReadings(1, roots('v2/container'));
    expect(checkOom(r, on).oom).toBe(false);
    expect(checkOom(r, { oomDetection: true, minAvailable: { percent: 80 } })).toMatchObject({ reason: 'low-available' });
  });
});
