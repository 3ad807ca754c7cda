/**
 * The container-wide report (pure): several tracked processes' data become
 * one ProfileData whose stacks start with a process frame (`pid 41: worker 3
 * (multiprocessing spawn)`, `Frame.pid` set), so the flamegraph's root splits
 * by process, the top lines name their process, and every existing renderer
 * (folded text, SVGs, report.json) works unchanged on it.
 */
import type {
  ContainerSummary,
  Frame,
  LiveSource,
  MemoryReadings,
  OomReason,
  OutOfSpaceTable,
  ProcessSummary,
  ProfileData,
  Sampling,
  Stack,
  Timeline,
  Trigger,
  Truncation,
} from './model.js';
import { processFrameName } from './process-label.js';
import { emptyTruncation, NO_PYTHON_FRAME } from './stacks.js';

/** One process's part of a container-wide report. */
export interface ProcessPart {
  pid: number;
  label: string;
  argv: string[];
  python: string;
  cwd: string;
  /** Its stacks at the container's peak (self bytes per stack, as ProfileData.stacks). */
  peakStacks: Stack[];
  /** Its own peak, whenever that was. */
  ownPeakBytes: number;
  /** Its stacks when the container ran out (OOM, post-mortem); null when not known. */
  liveStacks: Stack[] | null;
  /** Where liveStacks were read (ProcessSummary.liveSource); absent: null. */
  liveSource?: LiveSource | null;
  state: ProcessSummary['state'];
  /** Its own report, relative to the container report's directory. */
  report: string | null;
  sampling?: Sampling | null;
  /** Its shim's tables that stopped growing, the run dir being full (Truncation.outOfSpace). */
  outOfSpace?: OutOfSpaceTable[];
}

export interface ContainerInput {
  trigger: Trigger;
  oomReason: OomReason | null;
  /** The process whose allocation or readings tripped the OOM. */
  oomPid: number | null;
  oomAllocation: ProfileData['oomAllocation'];
  timeMs: number;
  memory: MemoryReadings;
  /** The program highwater started (report.json `process`); the first part when absent. */
  topPid?: number;
  peakMs: number;
  peakSource: ContainerSummary['peakSource'];
  processes: ProcessPart[];
  /** Ended processes folded away: how many, and the largest own peak among them. */
  folded: { count: number; peakBytes: number };
  timeline?: Timeline;
}

/** The root frame of a process's stacks. */
export function processFrame(pid: number, label: string): Frame {
  return { file: '', line: 0, function: processFrameName(pid, label), code: '', pid };
}

/** The process frame a container stack starts with, if it has one. */
export function processOf(frames: readonly Frame[]): Frame | undefined {
  const f = frames[0];
  return f && f.pid !== undefined ? f : undefined;
}

function sum(stacks: readonly Stack[] | null): number {
  let n = 0;
  for (const s of stacks ?? []) n += s.bytes > 0 ? s.bytes : 0;
  return n;
}

function under(root: Frame, stacks: readonly Stack[]): Stack[] {
  // Memory with no Python frame stays visible as its own child of the process.
  return stacks.map((s) => ({ bytes: s.bytes, frames: [root, ...(s.frames.length > 0 ? s.frames : [NO_PYTHON_FRAME])] }));
}

/** Every part's stacks under its process frame, in one ProfileData for the renderers. */
export function containerProfileData(c: ContainerInput): ProfileData {
  const top = c.processes.find((p) => p.pid === c.topPid) ?? c.processes[0];
  const roots = new Map(c.processes.map((p) => [p.pid, processFrame(p.pid, p.label)]));
  const stacks = c.processes.flatMap((p) => under(roots.get(p.pid)!, p.peakStacks));
  const withLive = c.processes.filter((p) => p.liveStacks !== null);
  const currentStacks = withLive.length > 0 ? withLive.flatMap((p) => under(roots.get(p.pid)!, p.liveStacks!)) : null;
  const rates = c.processes.map((p) => p.sampling?.rateBytes ?? 0).filter((r) => r > 0);
  const processes: ProcessSummary[] = c.processes.map((p) => ({
    pid: p.pid,
    label: p.label,
    argv: p.argv,
    python: p.python,
    bytesAtPeak: sum(p.peakStacks),
    ownPeakBytes: p.ownPeakBytes,
    liveBytes: p.liveStacks ? sum(p.liveStacks) : null,
    liveSource: p.liveSource ?? null,
    state: p.state,
    report: p.report,
  }));
  return {
    trigger: c.trigger,
    oomReason: c.oomReason,
    oomAllocation: c.oomAllocation,
    peakBytes: sum(stacks),
    timeMs: c.timeMs,
    process: top ? { pid: top.pid, argv: top.argv, python: top.python, cwd: top.cwd } : { pid: 0, argv: [], python: '', cwd: '' },
    memory: c.memory,
    // Sampled when any process sampled; the largest rate says how coarse the estimates can be.
    sampling: rates.length > 0 ? { rateBytes: Math.max(...rates) } : null,
    stacks,
    currentStacks,
    ...(c.timeline ? { timeline: c.timeline } : {}),
    ...outOfSpaceOf(c.processes),
    container: {
      processCount: c.processes.length + c.folded.count,
      peakMs: c.peakMs,
      peakSource: c.peakSource,
      oomPid: c.oomPid,
      foldedProcesses: c.folded.count,
      foldedPeakBytes: c.folded.peakBytes,
    },
    processes,
  };
}

/** The tables any process ran out of room for: the container report says so as each own report does. */
function outOfSpaceOf(parts: readonly ProcessPart[]): { truncation?: Truncation } {
  const tables = new Set(parts.flatMap((p) => p.outOfSpace ?? []));
  if (tables.size === 0) return {};
  return { truncation: { ...emptyTruncation(), outOfSpace: [...tables].sort() } };
}
