/**
 * The report model: what a raw dump or a state file becomes before rendering,
 * and the exact shape of report.json (the contract: docs/report.md "Outputs").
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
  /**
   * Added field, container-wide reports only: set on the synthetic root frame
   * of each stack, the process that holds the memory (report/container.ts).
   */
  pid?: number;
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

/** What the rendering limits (report/stacks.ts) cut from a profile. */
export interface Truncation {
  /** Stacks deeper than maxDepth, and the frames folded away in them. */
  foldedStacks: number;
  foldedFrames: number;
  /** Stacks merged into the "other" stack, and their bytes. */
  otherStacks: number;
  otherBytes: number;
  maxDepth: number;
  maxStacks: number;
  /**
   * Added field, present only when it happened: the tables the shim could
   * not grow because the run dir's filesystem was full (docs/troubleshooting.md);
   * stacks first seen after that were folded into their callers.
   */
  outOfSpace?: OutOfSpaceTable[];
}

/** Shim tables that can run out of room in the run dir (state header `spaceShort` bits 1, 2, 4). */
export type OutOfSpaceTable = 'stacks' | 'functions' | 'names';

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
  /**
   * Added field: null when every allocation's stack was recorded; with
   * sampling (HIGHWATER_SAMPLE_RATE) each stack's bytes are an unbiased
   * estimate (about one sample per rateBytes allocated), peakBytes stays exact.
   */
  sampling?: Sampling | null;
  /** Largest first; cover at least 99 % of peakBytes. */
  stacks: Stack[];
  /** Added field: what the rendering limits cut (stacks.ts MAX_DEPTH, MAX_STACKS), null when nothing was. */
  truncation: Truncation | null;
  /**
   * Added field, present only when it happened: allocations the allocator
   * refused (the program got a MemoryError it may have handled); the count,
   * and the size and stack of the last one.
   */
  failedAllocation?: FailedAllocation;
  /** Added field, OOM reports (and container-wide post-mortems: each process at its death) only: the stacks live when it ran out (largest first, 99 % of their sum). */
  oomStacks?: Stack[];
  /** Added field: memory over time, when the shim recorded it. */
  timeline?: Timeline;
  /** Added field, container-wide reports only (several processes): the container and every process in it. */
  container?: ContainerSummary;
  processes?: ProcessSummary[];
}

/** report.json `container`: what the container-wide numbers mean (docs/report.md "Several processes"). */
export interface ContainerSummary {
  /** Python processes whose memory the report covers (running, ended, and folded). */
  processCount: number;
  /** When the sum of tracked memory was highest (ms since the epoch; 0 = unknown). */
  peakMs: number;
  /**
   * How the per-process split at the peak was taken: `container` (the shims'
   * shared sum and each process's snapshot at its highest epoch: exact up to
   * one publication quantum, 1 MiB, per process), `sampled` (the watcher
   * read every process's live memory at once, the highest sum it saw),
   * `own-peaks` (no common moment was seen: each process's own peak, so
   * `peakBytes` is an upper bound of the container's).
   */
  peakSource: 'container' | 'sampled' | 'own-peaks';
  /** The OOM's process: the one whose guard or readings tripped it (null when not an OOM or unknown). */
  oomPid: number | null;
  /** Processes that ended and were folded away (only their count and largest peak are kept). */
  foldedProcesses: number;
  foldedPeakBytes: number;
}

/** report.json `processes[]`: one tracked process. */
export interface ProcessSummary {
  pid: number;
  /** Short name: `python train.py`, `worker 3 (multiprocessing spawn)`. */
  label: string;
  argv: string[];
  python: string;
  /** Its bytes in the peak view (the container peak). */
  bytesAtPeak: number;
  /** Its own peak, whenever that was. */
  ownPeakBytes: number;
  /** Its bytes when it ran out (OOM and post-mortem reports; null otherwise). */
  liveBytes: number | null;
  /**
   * Added field: where `liveBytes` (and its stacks in `oomStacks`) were read:
   * `dump` (its OOM dump), `kill` (the shim's copy when the process saw the
   * kernel's OOM kill: it outlived the kill), `state` (its state file's live
   * bytes at its death, or now when it still runs); null when `liveBytes` is
   * null or 0 by rule (it ended before, or started after).
   */
  liveSource: LiveSource | null;
  state: 'running' | 'exited' | 'killed' | 'oom';
  /** Its own report, relative to the container report's directory; null when none was kept. */
  report: string | null;
}

/** ProcessSummary.liveSource. */
export type LiveSource = 'dump' | 'kill' | 'state';

export interface FailedAllocation {
  count: number;
  bytes: number;
  frames: Frame[];
}

export interface Sampling {
  rateBytes: number;
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
  /** Byte sampling of the stacks, or null/absent when exact. */
  sampling?: Sampling | null;
  stacks: Stack[];
  /** Memory live when the dump was written (oom/request dumps only). */
  currentStacks: Stack[] | null;
  /** What the parser already cut to keep within the rendering limits. Absent: nothing. */
  truncation?: Truncation;
  /** Refused allocations (dump line `failedAllocation`), when there were any. */
  failedAllocation?: FailedAllocation;
  /** Memory over time; absent when the shim recorded none. */
  timeline?: Timeline;
  /** Container-wide data (several processes): stacks then start with a process frame (`Frame.pid`). */
  container?: ContainerSummary;
  processes?: ProcessSummary[];
}
