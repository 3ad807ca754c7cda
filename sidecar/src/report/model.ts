/**
 * The report model: what a raw dump or a state file becomes before rendering,
 * and the exact shape of report.json (the contract in DESIGN.md).
 */

export type Trigger = 'exit' | 'oom' | 'killed' | 'signal' | 'api' | 'request';
export type OomReason = 'low-available' | 'swap' | 'failed-allocation';
export type MemorySource = 'cgroup-v1' | 'cgroup-v2' | 'host' | 'none';

export interface Frame {
  file: string;
  line: number;
  function: string;
  /** Source text of the line, trimmed; '' when the file could not be read. */
  code: string;
  /** Columns of leading whitespace of the source line (tabs count 4); absent when 0. Added field. */
  indent?: number;
}

/** `[timeMs, trackedBytes, workingSetBytes, limitBytes, floorBytes]`; 0 = not known then. */
export type TimelineSample = [number, number, number, number, number];

/** Memory over time, recorded by the shim (docs/protocol.md "Timeline"). */
export interface Timeline {
  /** Names of the sample columns, in order. */
  fields: string[];
  /** Spacing of periodic samples when the series ended (doubles as the ring fills). */
  intervalMs: number;
  /** When tracked bytes reached `peakBytes` (ms since the epoch; 0 = unknown). */
  peakMs: number;
  peakBytes: number;
  /** Oldest first. */
  samples: TimelineSample[];
}

export interface Stack {
  bytes: number;
  /** Root first. Empty when no Python frame was known. */
  frames: Frame[];
}

export interface MemoryReadings {
  source: MemorySource;
  limitBytes: number;
  workingSetBytes: number;
  availableBytes: number;
  swapBytes: number;
  /** The guard floor in force (0 = off or unknown). Added field: absent in older data. */
  floorBytes?: number;
}

export interface ReportJson {
  version: 1;
  trigger: Trigger;
  oomReason: OomReason | null;
  oomAllocation: { bytes: number; frames: Frame[] } | null;
  peakBytes: number;
  /** When the data was taken (dump written, or state last updated), ms since the epoch. */
  timeMs: number;
  process: { pid: number; argv: string[]; python: string };
  memory: MemoryReadings;
  /** Largest first; cover at least 99 % of peakBytes. */
  stacks: Stack[];
  /** Added field, OOM reports only: the stacks live when it ran out (largest first, 99 % of their sum). */
  oomStacks?: Stack[];
  /** Added field: memory over time, when the shim recorded it. */
  timeline?: Timeline;
}

/**
 * Everything a renderer needs, whether it came from a raw dump or from a
 * post-mortem read of the state file. `stacks` holds every stack (not yet
 * trimmed to 99 %), in any order.
 */
export interface ProfileData {
  trigger: Trigger;
  oomReason: OomReason | null;
  oomAllocation: { bytes: number; frames: Frame[] } | null;
  peakBytes: number;
  timeMs: number;
  process: { pid: number; argv: string[]; python: string; cwd: string };
  memory: MemoryReadings;
  stacks: Stack[];
  /** Memory live when the dump was written (oom/request dumps only). */
  currentStacks: Stack[] | null;
  /** Memory over time; absent when the shim recorded none. */
  timeline?: Timeline;
}
