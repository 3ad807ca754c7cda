/**
 * OOM heuristics, pure functions over readings (docs/oom-detection.md "The rules"):
 * available < floor, floor = max(100 MiB, 2 % of total) by default; swap used
 * > available. The failed-allocation rule lives in the shim.
 */
import { totalBytes, type Readings } from './read.js';

export const MiB = 1024 * 1024;

/** The floor: the larger of an absolute size and a percentage of total memory. */
export interface MinAvailable {
  /** Absolute floor in bytes; undefined = not used. */
  bytes?: number;
  /** Floor as a percentage (0–100] of total memory; undefined = not used. */
  percent?: number;
}

export interface HeuristicsConfig {
  /** false turns the low-available and swap rules off. */
  oomDetection: boolean;
  minAvailable: MinAvailable;
}

export const DEFAULT_MIN_AVAILABLE: Readonly<MinAvailable> = Object.freeze({ bytes: 100 * MiB, percent: 2 });

/** Floor in bytes for `totalBytes` of memory (the cgroup limit if any, else host MemTotal). */
export function floorBytes(total: number, cfg: Pick<HeuristicsConfig, 'minAvailable'>): number {
  const { bytes, percent } = cfg.minAvailable;
  const fromPercent = percent === undefined ? 0 : Math.floor((total * percent) / 100);
  return Math.max(bytes ?? 0, fromPercent);
}

export type OomVerdict = { oom: false; floorBytes: number } | { oom: true; reason: 'low-available' | 'swap'; detail: string; floorBytes: number };

const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/**
 * Decide whether the readings mean the process is about to run out of memory.
 * `shimFloor`: the floor the process's shim published (it owns the floor,
 * docs/protocol.md); without one, the floor from `cfg` and the readings.
 */
export function checkOom(r: Readings, cfg: HeuristicsConfig, shimFloor?: number): OomVerdict {
  if (!cfg.oomDetection) return { oom: false, floorBytes: 0 };
  const floor = shimFloor ?? floorBytes(totalBytes(r), cfg);
  // Active page cache is in the working set, yet the kernel reclaims it before
  // an OOM kill: a job streaming files through the cache is not out of memory.
  if (r.availableBytes + (r.activeFileBytes ?? 0) < floor) {
    return {
      oom: true,
      reason: 'low-available',
      floorBytes: floor,
      detail: `available ${mib(r.availableBytes)} < floor ${mib(floor)} (${r.source}, limit ${r.limitBytes ? mib(r.limitBytes) : 'none'}, working set ${mib(r.workingSetBytes)})`,
    };
  }
  if (r.swapBytes > r.availableBytes) {
    return {
      oom: true,
      reason: 'swap',
      floorBytes: floor,
      detail: `swap used ${mib(r.swapBytes)} > available ${mib(r.availableBytes)} (${r.source})`,
    };
  }
  return { oom: false, floorBytes: floor };
}
