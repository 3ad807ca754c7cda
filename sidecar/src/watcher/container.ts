/**
 * The container-wide answer (issue 12): every tracked process of the run dir
 * in one report. The watcher hands it each pass's processes, the dumps, and
 * each process's end; it renders one report at the end (or on SIGUSR2 to the
 * program) whose flamegraph root splits by process (report/container.ts).
 *
 * Container peak: with the shims' container file (docs/protocol.md "Multiple
 * processes"), the peak is the container's `peakEpoch`, and each process's
 * part is its `cpeak` or `live` area by the protocol's rule: exact up to N ×
 * 1 MiB (the publication quantum). Without one (an older shim), the watcher
 * samples every live area each pass and keeps the pass with the highest sum
 * (`peakSource: "sampled"`; a higher sum between two passes is not seen).
 *
 * Bounded over a long run (a recycling pool): a process that ended is
 * resolved into stacks while its state file is still there, then kept (the
 * program, the OOM's process, the processes holding a part of the current
 * peak, the KEEP_ENDED largest own peaks and up to KEEP_KILLED processes
 * the kernel killed) or folded (only counted); the watcher removes its files
 * either way. So the run dir holds the files of running processes only, and
 * this holds at most KEEP_ENDED + KEEP_KILLED + (processes at the peak) + 2
 * ended processes' data.
 */
import { join } from 'node:path';
import { readDump } from '../report/dump.js';
import { containerProfileData, type ContainerInput, type ProcessPart } from '../report/container.js';
import type { Frame, LiveSource, ProcessSummary, ProfileData, ReportJson, Stack, Trigger } from '../report/model.js';
import { processLabel, processRole, type ProcessRole } from '../report/process-label.js';
import { makeReportDir, renderReport, type RenderOptions } from '../report/render.js';
import { readStateFile } from '../report/state.js';
import { readContainerHeader, type ContainerHeader } from './container-file.js';
import { readStateArea } from './live-sample.js';
import { areaAt, contributesAt, parseProcessFacts, type ProcessFacts } from './process-facts.js';
import type { StateHeader } from './state-header.js';

/**
 * Has a tracked child (origin exec or fork, docs/protocol.md) been in the run
 * dir? Then the run's report is container-wide; independent programs sharing
 * a run dir (two roots) keep one report each, as before. Each state file's
 * header is read once, until the first child is found.
 */
export class ChildSeen {
  seen = false;
  private readonly checked = new Set<string>();

  reset(): void {
    this.seen = false;
    this.checked.clear();
  }

  check(states: ReadonlyMap<number, string>): void {
    if (this.seen) return;
    for (const [pid, path] of states) {
      const read = readStateArea(path, 'none');
      if (!read) continue;
      const key = `${pid}:${read.ino}`;
      if (this.checked.has(key)) continue;
      const origin = parseProcessFacts(read.header).origin;
      if (origin !== 'unknown') this.checked.add(key); // unknown: an older shim, or a header still being written
      if (origin === 'exec' || origin === 'fork') {
        this.seen = true;
        this.checked.clear();
        return;
      }
    }
  }
}

/** Ended processes kept beyond the ones the report needs (their own reports). */
export const KEEP_ENDED = 8;
/**
 * Processes the kernel killed, kept beside those (the largest first): they
 * are what a report of a kill is read for, and a victim killed while it was
 * still growing had a smaller own peak than the survivors stopped after it,
 * so the KEEP_ENDED largest alone dropped victims (seen with 16 workers under
 * load). Bounded for a pool whose workers are killed again and again.
 */
export const KEEP_KILLED = 32;

/** What the watcher knows of a process in one pass. */
export interface ObservedProcess {
  pid: number;
  ino: number;
  statePath: string;
  header: StateHeader;
  /** In this PID namespace: its source files are ours to read. */
  local: boolean;
}

interface Member {
  key: string;
  pid: number;
  statePath: string | undefined;
  argv: string[];
  python: string;
  cwd: string;
  role: ProcessRole;
  label: string;
  local: boolean;
  facts: ProcessFacts | undefined;
  ownPeakBytes: number;
  state: ProcessSummary['state'];
  ended: boolean;
  /** When it ended (ms): was it still there when the container ran out? */
  endedMs: number | undefined;
  /** When tracking started (the shim's startMs), else when the watcher first saw it. */
  startMs: number;
  /** Its own report's data (its last dump, or its state file's peak). */
  own: ProfileData | undefined;
  /** From its `oom` dump: what was live when it ran out, exactly. */
  oomDump: ProfileData | undefined;
  /** Resolved at its end: its part of the peak `id` it ended in, and what it held when it ended. */
  peakPart: { id: number; stacks: Stack[] } | undefined;
  liveStacks: Stack[] | undefined;
  /** What it held when it saw the kernel's OOM kill (its `kill` area); undefined when it saw none. */
  killStacks: Stack[] | undefined;
}

/**
 * How much earlier than the kill a process must have exited to count as gone
 * before it: a killed process's end is when the watcher saw it vanish (one
 * poll late at most), so a process that exited *because of* the kill (a pool
 * parent's BrokenProcessPool) may seem to have ended a little before it.
 */
const ENDED_BEFORE_MARGIN_MS = 1000;

export interface ContainerBuildOptions {
  trigger?: Trigger;
  timeMs?: number;
  /**
   * A `killed` report: the kernel's OOM kill came after this moment (the
   * last time the cgroups' oom_kill counts were read and had not moved).
   */
  killAfterMs?: number;
}

/** The kill's moment in a `killed` report: the first end of a killed process (undefined when none is known). */
function killTime(members: readonly Member[]): number | undefined {
  let t: number | undefined;
  for (const m of members) if (m.state === 'killed' && m.endedMs !== undefined && (t === undefined || m.endedMs < t)) t = m.endedMs;
  return t;
}

function sum(stacks: readonly Stack[] | undefined): number {
  let n = 0;
  for (const s of stacks ?? []) n += s.bytes;
  return n;
}

export interface ContainerOptions {
  runDir: string;
  /** The program `highwater run` started (report.json `process`); else the first process seen. */
  topPid?: number;
}

export class ContainerCollector {
  private readonly members = new Map<string, Member>();
  /** pid → key of its newest member (a pid can come back as a new process). */
  private readonly byPid = new Map<number, string>();
  private container: ContainerHeader | undefined;
  /** Without a container file: the pass with the highest sum of live areas. */
  private best: { id: number; totalBytes: number; timeMs: number; parts: Map<string, Float64Array> } | undefined;
  private workers = 0;
  private readonly folded = { count: 0, peakBytes: 0 };
  private firstPid: number | undefined;

  private topHint: number | undefined;

  constructor(private readonly opts: ContainerOptions) {
    this.topHint = opts.topPid;
  }

  /** The program the owner started (`highwater run`'s child): report.json `process`. */
  setTop(pid: number): void {
    this.topHint = pid;
  }

  /** More than one process was seen: the run's report is container-wide. */
  get active(): boolean {
    return this.members.size + this.folded.count > 1;
  }

  /** Processes seen so far (kept and folded). */
  get processCount(): number {
    return this.members.size + this.folded.count;
  }

  /** The container file says a process ran out of memory (the run ends with 53). */
  get oomPid(): number {
    return this.container?.oomPid ?? 0;
  }

  /**
   * The container file now. A file of another identity (its creator gone, a
   * late process that found no live ancestor replaced it) does not start a
   * new peak or drop the OOM while this tree's processes are still known.
   */
  private readContainer(): void {
    const now = readContainerHeader(this.opts.runDir);
    if (!now) return;
    const c = this.container;
    if (c && (c.creatorPid !== now.creatorPid || c.createdMs !== now.createdMs) && this.members.size > 0) return;
    this.container = now;
  }

  /** Every process seen has ended (and its dumps were taken): the tree's report can be made. */
  get allEnded(): boolean {
    return this.members.size > 0 && [...this.members.values()].every((m) => m.ended || m.statePath === undefined);
  }

  /** Forget everything: the next processes are a new run (a restarted container sharing the run dir). */
  reset(): void {
    this.members.clear();
    this.byPid.clear();
    this.container = undefined;
    this.best = undefined;
    this.workers = 0;
    this.folded.count = 0;
    this.folded.peakBytes = 0;
    this.firstPid = undefined;
  }

  /** The current peak's identity: the container's epoch, or the best sample's number. */
  private get peakId(): number {
    return this.container ? this.container.peakEpoch : (this.best?.id ?? 0);
  }

  private member(pid: number, key: string, meta: { argv: string[]; python: string; cwd: string; local: boolean; statePath?: string; header?: Buffer }): Member {
    let m = this.members.get(key);
    if (m) return m;
    // Its dump came before its state file was seen: the same process, now with its file.
    const early = this.members.get(`${pid}:dump`);
    if (early && meta.statePath) {
      this.members.delete(early.key);
      m = this.members.get(key) ?? this.member(pid, key, meta);
      m.own = early.own;
      m.oomDump = early.oomDump;
      m.state = early.state;
      m.ownPeakBytes = Math.max(m.ownPeakBytes, early.ownPeakBytes);
      return m;
    }
    this.firstPid ??= pid;
    const facts = meta.header ? parseProcessFacts(meta.header) : undefined;
    const parentKey = facts?.trackedParentPid ? this.byPid.get(facts.trackedParentPid) : undefined;
    const parent = parentKey ? this.members.get(parentKey) : undefined;
    let role: ProcessRole;
    let n: number | undefined;
    if (facts?.origin === 'fork') {
      role = { kind: 'worker', how: parent?.role.kind === 'forkserver' ? 'multiprocessing forkserver' : 'fork' };
      n = facts.forkSeq || undefined;
    } else {
      role = processRole(meta.argv, facts?.origin === 'exec' ? undefined : parent?.argv);
      if (role.kind === 'worker') n = ++this.workers;
    }
    m = {
      key,
      pid,
      statePath: meta.statePath,
      argv: meta.argv,
      python: meta.python,
      cwd: meta.cwd,
      role,
      label: processLabel(meta.argv, role, n),
      local: meta.local,
      facts,
      ownPeakBytes: 0,
      state: 'running',
      ended: false,
      endedMs: undefined,
      startMs: facts?.startMs || Date.now(),
      own: undefined,
      oomDump: undefined,
      peakPart: undefined,
      liveStacks: undefined,
      killStacks: undefined,
    };
    this.members.set(key, m);
    this.byPid.set(pid, key);
    return m;
  }

  /**
   * Its facts, once its header has them (a forked child's header may be
   * read before the shim filled them): its role and label follow.
   */
  private learnFacts(m: Member, statePath: string): void {
    const head = readStateArea(statePath, 'none');
    if (!head) return;
    const facts = parseProcessFacts(head.header);
    if (facts.origin === 'unknown') return;
    m.facts = facts;
    m.startMs = facts.startMs || m.startMs;
    const parentKey = facts.trackedParentPid ? this.byPid.get(facts.trackedParentPid) : undefined;
    const parent = parentKey ? this.members.get(parentKey) : undefined;
    if (facts.origin === 'fork') {
      m.role = { kind: 'worker', how: parent?.role.kind === 'forkserver' ? 'multiprocessing forkserver' : 'fork' };
      m.label = processLabel(m.argv, m.role, facts.forkSeq || undefined);
    } else if (m.role.kind === 'program' && facts.origin === 'exec') {
      m.role = processRole(m.argv);
      if (m.role.kind === 'worker') m.label = processLabel(m.argv, m.role, ++this.workers);
    }
  }

  /** One pass over the running processes. */
  observe(processes: readonly ObservedProcess[]): void {
    const before = this.peakId;
    this.readContainer();
    const parts = new Map<string, Float64Array>();
    let total = 0;
    for (const p of processes) {
      const key = `${p.pid}:${p.ino}`;
      const known = this.members.get(key);
      // The header once for a new process (its facts name it); the live area each pass only without a container file.
      const read = !known || !this.container ? readStateArea(p.statePath, this.container ? 'none' : 'live') : undefined;
      if (read && read.ino !== p.ino) continue;
      const m = known ?? this.member(p.pid, key, { ...p.header, local: p.local, statePath: p.statePath, ...(read ? { header: read.header } : {}) });
      if (!m.facts || m.facts.origin === 'unknown') this.learnFacts(m, p.statePath);
      m.ownPeakBytes = Math.max(m.ownPeakBytes, p.header.peakBytes);
      if (read?.bytes) {
        parts.set(key, read.bytes);
        total += read.totalBytes;
      }
    }
    if (!this.container && parts.size > 0 && total > (this.best?.totalBytes ?? -1)) {
      this.best = { id: (this.best?.id ?? 0) + 1, totalBytes: total, timeMs: Date.now(), parts };
    }
    if (this.peakId !== before) this.prune();
  }

  /** A complete dump of a process: its data is taken (the caller removes the file). */
  async takeDump(pid: number, path: string): Promise<ProfileData> {
    const data = await readDump(path);
    const key = this.byPid.get(pid) ?? `${pid}:dump`;
    const m = this.member(pid, key, { argv: data.process.argv, python: data.process.python, cwd: data.process.cwd, local: false });
    m.ownPeakBytes = Math.max(m.ownPeakBytes, data.peakBytes);
    if (data.trigger === 'oom') {
      m.oomDump = data;
      m.state = 'oom';
    }
    m.own = data;
    return data;
  }

  /**
   * A process that ended without a dump (highwater.api.profile()'s fork
   * workers, a terminated worker): its own peak from its state file, read as
   * untrusted (readStateFile's checks); throws when it cannot be read.
   */
  async takeEndedState(pid: number, statePath: string, header: Buffer): Promise<ProfileData> {
    const data = await readStateFile(statePath, { nodeBytes: 'peak', trigger: 'killed' });
    const m = this.member(pid, `${pid}:state`, { argv: data.process.argv, python: data.process.python, cwd: data.process.cwd, local: true, statePath, header });
    m.ended = true;
    // An exit code through _exit (a fork worker's os._exit) is an exit; otherwise a signal ended it.
    m.state = m.facts && m.facts.exitCode >= 0x100 ? 'exited' : 'killed';
    if (m.facts?.endMs) m.endedMs = m.facts.endMs;
    m.ownPeakBytes = Math.max(m.ownPeakBytes, data.peakBytes);
    m.own = data;
    return data;
  }

  /** Bytes per node → stacks, from the process's state file (source lines from disk only for a local process). */
  private async stacks(m: Member, statePath: string, nodeBytes: 'peak' | 'live' | Float64Array): Promise<ProfileData | undefined> {
    try {
      return await readStateFile(statePath, { nodeBytes, trigger: 'killed', ...(m.local ? {} : { readSource: () => undefined }) });
    } catch {
      return undefined; // unreadable: the process stays in the table without stacks
    }
  }

  /**
   * Its bytes per node when it saw the kernel's OOM kill (the shim's `kill`
   * area, published with `killMs` last: a header that says so comes with a
   * whole area), as stacks; undefined when it saw no kill.
   */
  private async killStacksOf(m: Member, statePath: string): Promise<Stack[] | undefined> {
    // The header alone first: most processes never see a kill, and their area is not read.
    const head = readStateArea(statePath, 'none');
    if (!head || parseProcessFacts(head.header).killMs === 0) return undefined;
    const read = readStateArea(statePath, 'kill');
    if (!read?.bytes || parseProcessFacts(read.header).killMs === 0) return undefined;
    return (await this.stacks(m, statePath, read.bytes))?.stacks;
  }

  /** Its part of the current peak, read from its state file now; undefined when it holds none. */
  private async peakPartNow(m: Member, statePath: string): Promise<Stack[] | undefined> {
    if (this.container) {
      const e = this.container.peakEpoch;
      const head = readStateArea(statePath, 'none');
      if (!head) return undefined;
      const facts = parseProcessFacts(head.header);
      m.facts = facts;
      if (!contributesAt(facts, e)) return undefined;
      const area = readStateArea(statePath, areaAt(facts, e));
      // Read again: the epoch may have moved while the area was read; then this is the newer part's start.
      return area?.bytes ? (await this.stacks(m, statePath, area.bytes))?.stacks : undefined;
    }
    const bytes = this.best?.parts.get(m.key);
    return bytes ? (await this.stacks(m, statePath, bytes))?.stacks : undefined;
  }

  /**
   * The process ended (its state file is still there): resolve its part of
   * the peak and what it held at its end, then keep or fold it.
   * `postMortem`: it left no dump.
   */
  async ended(pid: number, ino: number, statePath: string, postMortem: boolean): Promise<void> {
    const m = this.members.get(`${pid}:${ino}`);
    if (!m || m.ended) return;
    this.readContainer();
    m.ended = true;
    m.endedMs = Date.now();
    if (!m.facts || m.facts.origin === 'unknown') this.learnFacts(m, statePath);
    const part = await this.peakPartNow(m, statePath); // also reads its facts as they are at its end
    if (part) m.peakPart = { id: this.peakId, stacks: part };
    if (m.facts?.endMs) m.endedMs = m.facts.endMs;
    if (m.facts?.startMs) m.startMs = m.facts.startMs;
    // No dump, but an exit code through _exit (a fork worker, the stopper after an OOM): it exited.
    if (m.state === 'running') m.state = postMortem && !(m.facts && m.facts.exitCode >= 0x100) ? 'killed' : 'exited';
    m.liveStacks = (await this.stacks(m, statePath, 'live'))?.stacks;
    m.killStacks = await this.killStacksOf(m, statePath);
    if (!m.own) m.own = await this.stacks(m, statePath, 'peak');
    this.best?.parts.delete(m.key);
    this.prune();
  }

  /** Folds ended processes the report no longer needs: only their count and largest own peak remain. */
  private prune(): void {
    const ended = [...this.members.values()].filter((m) => m.ended);
    const bySize = [...ended].sort((a, b) => b.ownPeakBytes - a.ownPeakBytes);
    const largest = new Set(bySize.slice(0, KEEP_ENDED).map((m) => m.key));
    const victims = new Set(
      bySize
        .filter((m) => m.state === 'killed')
        .slice(0, KEEP_KILLED)
        .map((m) => m.key),
    );
    const top = this.topPid;
    for (const m of ended) {
      const needed = m.pid === top || m.state === 'oom' || m.pid === this.oomPid || m.peakPart?.id === this.peakId || largest.has(m.key) || victims.has(m.key);
      if (needed) continue;
      this.members.delete(m.key);
      this.folded.count++;
      this.folded.peakBytes = Math.max(this.folded.peakBytes, m.ownPeakBytes);
    }
  }

  /**
   * The program: the process `highwater run` started; under `watch` (no
   * owner) the tree's root process (origin root), not whichever of its
   * children was seen first (a resource tracker, a worker).
   */
  private get topPid(): number | undefined {
    const t = this.topHint;
    if (t !== undefined && this.byPid.has(t)) return t;
    for (const m of this.members.values()) if (m.facts?.origin === 'root') return m.pid;
    return this.firstPid;
  }

  /** The container-wide data now. `trigger` when the caller knows better (SIGKILL of the program, SIGUSR2). */
  async build(opts: ContainerBuildOptions = {}): Promise<ProfileData> {
    this.readContainer();
    const c = this.container;
    const peaks = new Map<string, Stack[]>();
    for (const m of this.members.values()) {
      if (!m.ended && m.statePath) {
        peaks.set(m.key, (await this.peakPartNow(m, m.statePath)) ?? []);
        m.liveStacks = (await this.stacks(m, m.statePath, 'live'))?.stacks;
        m.killStacks = await this.killStacksOf(m, m.statePath);
      } else peaks.set(m.key, m.peakPart?.id === this.peakId ? m.peakPart.stacks : []);
    }
    const members = [...this.members.values()];
    withDumpSources(members, peaks);
    const oomMember = members.find((m) => (c && c.oomPid !== 0 ? m.pid === c.oomPid : m.oomDump !== undefined));
    const oomDump = oomMember?.oomDump;
    const isOom = (c !== undefined && c.oomPid !== 0) || oomDump !== undefined;
    const trigger: Trigger = isOom ? 'oom' : (opts.trigger ?? 'exit');
    const liveView = trigger === 'oom' || trigger === 'killed';
    const oomMs = (c?.oomMs || oomDump?.timeMs) ?? opts.timeMs ?? Date.now();
    const killMs = trigger === 'killed' ? killTime(members) : undefined;
    // Gone before the kill: surely so when it ended before a moment the OOM-kill counts were read unmoved
    // (the kill came after that read); without that reading, when it ended well before a killed process was seen gone.
    const endedBeforeKill = (endedMs: number): boolean =>
      opts.killAfterMs !== undefined ? endedMs < opts.killAfterMs : killMs !== undefined && endedMs < killMs - ENDED_BEFORE_MARGIN_MS;
    const noPeak = this.peakId === 0;
    // What each one held when the container ran out, and where that was read.
    const liveAt = (m: Member): { stacks: Stack[] | null; source: LiveSource | null } => {
      if (!liveView) return { stacks: null, source: null };
      if (m.oomDump?.currentStacks) return { stacks: m.oomDump.currentStacks, source: 'dump' };
      if (trigger === 'oom' && ((m.endedMs !== undefined && m.endedMs < oomMs - 1000) || m.startMs > oomMs)) return { stacks: [], source: null }; // ended before it ran out, or started after (a pool replacing its stopped workers)
      // It outlived the kill: what it held when it saw it, not what its own teardown left.
      if (trigger === 'killed' && m.killStacks) return { stacks: m.killStacks, source: 'kill' };
      if (trigger === 'killed' && m.state === 'exited' && m.endedMs !== undefined && endedBeforeKill(m.endedMs)) return { stacks: [], source: null }; // exited by itself before the kill: never live at it (its peak part and own peak stay)
      return { stacks: m.liveStacks ?? null, source: m.liveStacks ? 'state' : null }; // killed: what it held at its death
    };
    const parts: ProcessPart[] = members.map((m) => {
      const live = liveAt(m);
      return {
        pid: m.pid,
        label: m.label,
        argv: m.argv,
        python: m.python,
        cwd: m.cwd,
        // No common moment known (no container file, no sample): each one's own peak.
        peakStacks: noPeak ? (m.own?.stacks ?? []) : peaks.get(m.key)!,
        ownPeakBytes: Math.max(m.ownPeakBytes, m.own?.peakBytes ?? 0),
        liveStacks: live.stacks,
        liveSource: live.source,
        state: m.state,
        report: m.own ? `processes/pid-${m.pid}/index.html` : null,
        sampling: m.own?.sampling ?? null,
        ...(m.own?.truncation?.outOfSpace ? { outOfSpace: m.own.truncation.outOfSpace } : {}),
      };
    });
    const withMemory = oomDump ?? members.map((m) => m.own).find((o) => o !== undefined);
    const input: ContainerInput = {
      trigger,
      oomReason: c?.oomReason ?? oomDump?.oomReason ?? null,
      oomPid: oomMember?.pid ?? (c?.oomPid || null),
      oomAllocation: oomDump?.oomAllocation ?? null,
      timeMs: isOom ? oomMs : (opts.timeMs ?? Date.now()),
      memory: withMemory?.memory ?? { source: 'none', limitBytes: 0, workingSetBytes: 0, availableBytes: 0, swapBytes: 0 },
      ...(this.topPid !== undefined ? { topPid: this.topPid } : {}),
      peakMs: c?.peakMs ?? this.best?.timeMs ?? 0,
      peakSource: c ? 'container' : this.best ? 'sampled' : 'own-peaks',
      processes: parts,
      folded: { ...this.folded },
    };
    return containerProfileData(input);
  }

  /**
   * Renders the container-wide report: a new `<outDir>/<timestamp>/` with
   * each kept process's own report under `processes/pid-<pid>/`, then the
   * container's files (index.html last).
   */
  async render(outDir: string, renderOptions: RenderOptions = {}, opts: ContainerBuildOptions = {}): Promise<{ dir: string; report: ReportJson }> {
    const data = await this.build(opts);
    const dir = renderOptions.timestampedSubdir === false ? outDir : await makeReportDir(outDir, renderOptions);
    const failed = new Set<number>();
    for (const m of this.members.values()) {
      if (!m.own) continue;
      try {
        await renderReport(m.own, join(dir, 'processes', `pid-${m.pid}`), { ...renderOptions, timestampedSubdir: false });
      } catch {
        failed.add(m.pid); // its part is still in the container report; only its own page is missing
      }
    }
    if (failed.size > 0) data.processes = data.processes!.map((p) => (failed.has(p.pid) ? { ...p, report: null } : p));
    return renderReport(data, dir, { ...renderOptions, timestampedSubdir: false });
  }
}

/**
 * Stacks read from a state file have no source text when the process was not
 * local (another container, or gone before it was seen); its dumps carry
 * the text of every line they name, so the lines the dumps know are filled in.
 */
function withDumpSources(members: Member[], peaks: Map<string, Stack[]>): void {
  const text = new Map<string, Frame>();
  const learn = (stacks: readonly Stack[] | null | undefined) => {
    for (const s of stacks ?? []) for (const f of s.frames) if (f.code) text.set(`${f.file}\0${f.line}`, f);
  };
  for (const m of members) {
    learn(m.own?.stacks);
    learn(m.oomDump?.currentStacks);
  }
  if (text.size === 0) return;
  const filled = new Map<Frame, Frame>();
  const fill = (f: Frame): Frame => {
    if (f.code) return f;
    let g = filled.get(f);
    if (!g) {
      const known = text.get(`${f.file}\0${f.line}`);
      g = known ? { ...f, code: known.code, ...(known.indent ? { indent: known.indent } : {}) } : f;
      filled.set(f, g);
    }
    return g;
  };
  const fillAll = (stacks: Stack[]) => stacks.map((s) => ({ bytes: s.bytes, frames: s.frames.map(fill) }));
  for (const [k, v] of peaks) peaks.set(k, fillAll(v));
  for (const m of members) if (m.liveStacks) m.liveStacks = fillAll(m.liveStacks);
}

/** Bytes at the peak of one process in a rendered container report (tests, logs). */
export function processBytes(report: ReportJson, pid: number): number {
  return sum(report.stacks.filter((s) => s.frames[0]?.pid === pid));
}
