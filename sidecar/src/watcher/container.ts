/**
 * The container-wide answer (issue 12): every tracked process of the run dir
 * in one report. The watcher hands it each pass's processes, the dumps, and
 * each process's end; it renders one report at the end (or on SIGUSR2 to the
 * program) whose flamegraph root splits by process (report/container.ts).
 *
 * Container peak: after each pass the live area of every state file is read
 * (watcher/live-sample.ts); the pass whose sum is highest is the peak, and
 * its per-node bytes become each process's stacks at the peak. Exact at the
 * sampled moments; a higher sum between two passes (shorter than the poll
 * interval) is not seen — the report says `peakSource: "sampled"`.
 *
 * Bounded over a long run (a recycling pool): a process that ended is
 * resolved into stacks while its state file is still there, then either kept
 * (the program, the processes in the peak sample, the OOM's process, and the
 * KEEP_ENDED largest own peaks) or folded (only counted); the watcher removes
 * its files either way. So the run dir holds the files of running processes
 * only, and this holds at most KEEP_ENDED + (processes at the peak) ended
 * processes' data.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readDump } from '../report/dump.js';
import { containerProfileData, type ContainerInput, type ProcessPart } from '../report/container.js';
import type { ProcessSummary, ProfileData, ReportJson, Stack, Trigger } from '../report/model.js';
import { processLabel, processRole } from '../report/process-label.js';
import { makeReportDir, renderReport, type RenderOptions } from '../report/render.js';
import { readStateFile } from '../report/state.js';
import { readLiveSample } from './live-sample.js';
import type { StateHeader } from './state-header.js';

/** Ended processes kept beyond the ones the report needs (their own reports). */
export const KEEP_ENDED = 8;

/** What the watcher knows of a process in one pass. */
export interface ObservedProcess {
  pid: number;
  ino: number;
  statePath: string;
  header: StateHeader;
  /** In this PID namespace: its parent can be read, its source files are ours to read. */
  local: boolean;
}

interface Member {
  key: string;
  pid: number;
  statePath: string | undefined;
  argv: string[];
  python: string;
  cwd: string;
  label: string;
  local: boolean;
  ownPeakBytes: number;
  sampleRate: number;
  state: ProcessSummary['state'];
  ended: boolean;
  /** When it ended (ms), to tell whether it was still there when the container ran out. */
  endedMs: number | undefined;
  /** Its own report's data (a dump, or its state file's peak); kept for the largest. */
  own: ProfileData | undefined;
  /** From its `oom` dump: what was live when it ran out, exactly. */
  oomDump: ProfileData | undefined;
  /** Resolved at its end: its stacks in the peak sample, and in its last sample (or at death). */
  peakStacks: Stack[] | undefined;
  liveStacks: Stack[] | undefined;
}

interface Sample {
  totalBytes: number;
  timeMs: number;
  parts: Map<string, Float64Array>;
}

function parentPid(procRoot: string, pid: number): number | undefined {
  try {
    const stat = readFileSync(join(procRoot, String(pid), 'stat'), 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function sum(stacks: readonly Stack[] | undefined): number {
  let n = 0;
  for (const s of stacks ?? []) n += s.bytes;
  return n;
}

export interface ContainerOptions {
  procRoot?: string;
  /** The program `highwater run` started (report.json `process`); else the first process seen. */
  topPid?: number;
  /** Passes are this far apart: a process that ended within two of them was there when it ran out. */
  pollIntervalMs: number;
}

export class ContainerCollector {
  private readonly members = new Map<string, Member>();
  /** pid → key of its newest member (a pid can come back as a new process). */
  private readonly byPid = new Map<number, string>();
  private best: Sample | undefined;
  private readonly last = new Map<string, Float64Array>();
  private workers = 0;
  private folded = { count: 0, peakBytes: 0 };
  private firstPid: number | undefined;
  /** Keys of the peak sample whose process ended: their stacks at the peak are resolved on the member. */
  private readonly bestResolved = new Set<string>();

  constructor(private readonly opts: ContainerOptions) {}

  /** More than one process was seen: the run's report is container-wide. */
  get active(): boolean {
    return this.members.size + this.folded.count > 1;
  }

  /** pids seen so far (running or ended), for tests and logs. */
  get processCount(): number {
    return this.members.size + this.folded.count;
  }

  private member(pid: number, key: string, meta: { argv: string[]; python: string; cwd: string; local: boolean; statePath?: string }): Member {
    let m = this.members.get(key);
    if (m) return m;
    this.firstPid ??= pid;
    const parentKey = meta.local ? this.byPid.get(parentPid(this.opts.procRoot ?? '/proc', pid) ?? -1) : undefined;
    const parent = parentKey ? this.members.get(parentKey) : undefined;
    const role = processRole(meta.argv, parent?.argv);
    const label = processLabel(meta.argv, role, role.kind === 'worker' ? ++this.workers : undefined);
    m = {
      key, pid, statePath: meta.statePath, argv: meta.argv, python: meta.python, cwd: meta.cwd, label, local: meta.local,
      ownPeakBytes: 0, sampleRate: 0, state: 'running', ended: false, endedMs: undefined,
      own: undefined, oomDump: undefined, peakStacks: undefined, liveStacks: undefined,
    };
    this.members.set(key, m);
    this.byPid.set(pid, key);
    return m;
  }

  /** One pass: every running process; the live areas are sampled and the peak kept. */
  observe(processes: readonly ObservedProcess[]): void {
    const parts = new Map<string, Float64Array>();
    let total = 0;
    for (const p of processes) {
      const key = `${p.pid}:${p.ino}`;
      const m = this.member(p.pid, key, { argv: p.header.argv, python: p.header.python, cwd: p.header.cwd, local: p.local, statePath: p.statePath });
      m.ownPeakBytes = Math.max(m.ownPeakBytes, p.header.peakBytes);
      const s = readLiveSample(p.statePath);
      if (!s || s.ino !== p.ino) continue;
      parts.set(key, s.bytes);
      this.last.set(key, s.bytes);
      total += s.totalBytes;
    }
    if (parts.size > 0 && total > (this.best?.totalBytes ?? -1)) {
      this.best = { totalBytes: total, timeMs: Date.now(), parts };
      // Ended processes held nothing at this new peak.
      for (const key of this.bestResolved) {
        const m = this.members.get(key);
        if (m) m.peakStacks = undefined;
      }
      this.bestResolved.clear();
      this.prune();
    }
  }

  /** A complete dump of a process: its data is taken (the caller removes the file). */
  async takeDump(pid: number, path: string): Promise<ProfileData> {
    const data = await readDump(path);
    const key = this.byPid.get(pid) ?? `${pid}:dump`;
    const m = this.member(pid, key, { argv: data.process.argv, python: data.process.python, cwd: data.process.cwd, local: false });
    m.ownPeakBytes = Math.max(m.ownPeakBytes, data.peakBytes);
    m.sampleRate = data.sampling?.rateBytes ?? 0;
    if (data.trigger === 'oom') {
      m.oomDump = data;
      m.state = 'oom';
    }
    m.own = data;
    return data;
  }

  /**
   * The process ended (its state file is still there): resolve its samples
   * into stacks, then keep or fold it. `postMortem`: it left no dump, its
   * live area is what it held when it died.
   */
  async ended(pid: number, ino: number, statePath: string, postMortem: boolean): Promise<void> {
    const key = `${pid}:${ino}`;
    const m = this.members.get(key);
    if (!m || m.ended) return;
    m.ended = true;
    m.endedMs = Date.now();
    if (m.state === 'running') m.state = postMortem ? 'killed' : 'exited';
    const readSource = m.local ? {} : { readSource: () => undefined };
    const resolve = async (nodeBytes: 'peak' | 'live' | Float64Array): Promise<ProfileData | undefined> => {
      try {
        return await readStateFile(statePath, { ...readSource, nodeBytes, trigger: 'killed' });
      } catch {
        return undefined; // an unreadable file: the process stays in the table without stacks
      }
    };
    const inBest = this.best?.parts.get(key);
    if (inBest) {
      m.peakStacks = (await resolve(inBest))?.stacks ?? [];
      this.bestResolved.add(key);
    }
    if (postMortem) {
      m.liveStacks = (await resolve('live'))?.stacks;
      if (!m.own) m.own = await resolve('peak');
    } else {
      const last = this.last.get(key);
      if (last) m.liveStacks = (await resolve(last))?.stacks;
    }
    this.best?.parts.delete(key);
    this.last.delete(key);
    this.prune();
  }

  /** Folds ended processes the report no longer needs: only their count and largest own peak remain. */
  private prune(): void {
    const ended = [...this.members.values()].filter((m) => m.ended);
    const largest = new Set(
      [...ended].sort((a, b) => b.ownPeakBytes - a.ownPeakBytes).slice(0, KEEP_ENDED).map((m) => m.key),
    );
    const top = this.topPid;
    for (const m of ended) {
      const needed = m.pid === top || m.state === 'oom' || this.bestResolved.has(m.key) || largest.has(m.key);
      if (needed) continue;
      this.members.delete(m.key);
      this.folded.count++;
      this.folded.peakBytes = Math.max(this.folded.peakBytes, m.ownPeakBytes);
    }
  }


  private get topPid(): number | undefined {
    return this.opts.topPid !== undefined && [...this.members.values()].some((m) => m.pid === this.opts.topPid) ? this.opts.topPid : this.firstPid;
  }

  /** The container-wide data now. `trigger` when the caller knows better (SIGKILL of the program, SIGUSR2). */
  async build(opts: { trigger?: Trigger; timeMs?: number } = {}): Promise<ProfileData> {
    // Running processes' parts of the peak sample, and their live memory now.
    for (const m of this.members.values()) {
      if (m.ended || !m.statePath) continue;
      const inBest = this.best?.parts.get(m.key);
      if (inBest) m.peakStacks = (await this.stacksOf(m, inBest)) ?? [];
      const now = readLiveSample(m.statePath);
      if (now) m.liveStacks = await this.stacksOf(m, now.bytes);
    }
    const members = [...this.members.values()];
    const oom = members.find((m) => m.oomDump)?.oomDump;
    const oomMember = members.find((m) => m.oomDump);
    const trigger: Trigger = oom ? 'oom' : (opts.trigger ?? 'exit');
    const liveView = trigger === 'oom' || trigger === 'killed';
    const oomMs = oom?.timeMs ?? opts.timeMs ?? Date.now();
    const recent = 2 * this.opts.pollIntervalMs + 1000;
    const parts: ProcessPart[] = members.map((m) => ({
      pid: m.pid,
      label: m.label,
      argv: m.argv,
      python: m.python,
      cwd: m.cwd,
      peakStacks: this.best ? (m.peakStacks ?? []) : (m.own?.stacks ?? []),
      ownPeakBytes: Math.max(m.ownPeakBytes, m.own?.peakBytes ?? 0),
      liveStacks: !liveView
        ? null
        : m.oomDump?.currentStacks
          ? m.oomDump.currentStacks
          : m.endedMs !== undefined && m.endedMs < oomMs - recent
            ? [] // ended before it ran out: held nothing then
            : (m.liveStacks ?? null),
      state: m.state,
      report: m.own ? `processes/pid-${m.pid}/index.html` : null,
      sampling: m.own?.sampling ?? (m.sampleRate > 0 ? { rateBytes: m.sampleRate } : null),
    }));
    const memorySource = oom ?? members.map((m) => m.own).find((o) => o !== undefined);
    const input: ContainerInput = {
      trigger,
      oomReason: oom?.oomReason ?? null,
      oomPid: oomMember?.pid ?? null,
      oomAllocation: oom?.oomAllocation ?? null,
      timeMs: oom?.timeMs ?? opts.timeMs ?? Date.now(),
      memory: memorySource?.memory ?? { source: 'none', limitBytes: 0, workingSetBytes: 0, availableBytes: 0, swapBytes: 0 },
      ...(this.topPid !== undefined ? { topPid: this.topPid } : {}),
      peakMs: this.best?.timeMs ?? 0,
      peakSource: this.best ? 'sampled' : 'own-peaks',
      processes: parts,
      folded: { ...this.folded },
    };
    return containerProfileData(input);
  }

  private async stacksOf(m: Member, nodeBytes: Float64Array): Promise<Stack[] | undefined> {
    if (!m.statePath) return undefined;
    try {
      return (await readStateFile(m.statePath, { nodeBytes, trigger: 'killed', ...(m.local ? {} : { readSource: () => undefined }) })).stacks;
    } catch {
      return undefined;
    }
  }

  /**
   * Renders the container-wide report: a new `<outDir>/<timestamp>/` with
   * each kept process's own report under `processes/pid-<pid>/`, then the
   * container's files (index.html last).
   */
  async render(outDir: string, renderOptions: RenderOptions = {}, opts: { trigger?: Trigger; timeMs?: number } = {}): Promise<{ dir: string; report: ReportJson }> {
    const data = await this.build(opts);
    const dir = await makeReportDir(outDir, renderOptions);
    for (const m of this.members.values()) {
      if (!m.own) continue;
      await renderReport(m.own, join(dir, 'processes', `pid-${m.pid}`), { ...renderOptions, timestampedSubdir: false });
    }
    return renderReport(data, dir, { ...renderOptions, timestampedSubdir: false });
  }
}

/** Bytes at the peak of one process in a rendered container report (tests, logs). */
export function processBytes(report: ReportJson, pid: number): number {
  return sum(report.stacks.filter((s) => s.frames[0]?.pid === pid));
}
