/**
 * The watcher of a run dir, for every mode: `highwater watch` (Docker,
 * sidecar) and `highwater run` (which adds the spawn and the exit status).
 * One poll loop per run dir: every pollIntervalMs one pass lists the run dir
 * once; every tracked process (`hw-<pid>.state`, any number of them) gets
 * readings, the OOM heuristics against the floor its shim publishes, and
 * `oom` on its own control socket; every new complete dump is rendered once
 * (render-queue.ts: one at a time, in order); a process that disappears
 * without a dump gets a post-mortem report from its state file, by the one
 * rule in post-mortem.ts. Readings come from the process's cgroup when it runs
 * in this container (same pid *and* same cmdline), otherwise from the status
 * the shim publishes in the state file header every 250 ms.
 *
 * The hooks are its events (RunDirEvent): `process-found` / `process-gone`,
 * `oom` (the heuristics fired), `report` (a report was written; `postMortem`
 * says it came from a state file), `report-failed`. It never throws into its
 * loop. Rendered dumps and the files of ended processes are removed from the
 * run dir; whatever could not be rendered stays (and is named in the event).
 */
import { EventEmitter } from 'node:events';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isHighwaterError } from '../errors.js';
import { checkOom, type HeuristicsConfig } from '../memory/heuristics.js';
import { readReadings, type ReadOptions, type Readings } from '../memory/read.js';
import type { ReportJson, Trigger } from '../report/model.js';
import { renderDumpFile, renderReport, reportNotWritten, type RenderOptions } from '../report/render.js';
import { copyOut } from '../report/safe-file.js';
import { readStateFile } from '../report/state.js';
import { ChildSeen, ContainerCollector } from './container.js';
import { sendControl } from './control.js';
import { processIdentity, processStartTicks, type Identity } from './identity.js';
import { removeDumpLeftovers } from './leftovers.js';
import { readStateArea } from './live-sample.js';
import { OomKillWatch } from './oom-kill-watch.js';
import { postMortemTrigger, type EndStatus } from './post-mortem.js';
import { parseProcessFacts } from './process-facts.js';
import { RenderQueue } from './render-queue.js';
import { listRunDir, type DumpFile, type RunDirListing } from './rundir.js';
import { parseStateHeader, readingsFromHeader, readStateHeader, type StateHeader } from './state-header.js';

export type RunDirEvent =
  | { type: 'process-found'; pid: number; argv: string[]; local: boolean }
  | { type: 'process-gone'; pid: number; local: boolean }
  /**
   * A CPython ran under the shim and ended without highwater's bootstrap ever
   * starting in it (its state file names no Python version): untracked and
   * unguarded from start to end. `python -I`, `-E` and `-S`, or a PYTHONPATH
   * set over highwater's, keep `site` from loading the bootstrap.
   */
  | { type: 'not-started'; pid: number; argv: string[] }
  | { type: 'no-process'; runDir: string; afterMs: number }
  | { type: 'reading-failed'; pid: number; message: string }
  /** A run-dir entry that is never read (a symlink, FIFO, device, an unreadable state file); once per path and reason. */
  | { type: 'file-skipped'; path: string; reason: string }
  /** The floor in force in the process's guard, as its shim publishes it: first seen, or changed. */
  | { type: 'floor-set'; pid: number; floorBytes: number }
  | { type: 'oom'; pid: number; reason: 'low-available' | 'swap'; detail: string; readings: Readings }
  /**
   * The shim found the process out of memory itself and is ending it (its
   * header's `oomReason`, set before the OOM dump is written): seen at the
   * first pass after, whether or not its report can ever be rendered.
   */
  | { type: 'oom-exit'; pid: number; reason: NonNullable<StateHeader['oomReason']> }
  | { type: 'control-failed'; pid: number; command: string; message: string }
  /** `postMortem`: rendered from the state file of a process that ended without a dump. */
  | { type: 'report'; pid: number | undefined; from: string; dir: string; report: ReportJson; postMortem: boolean }
  | {
      type: 'report-failed';
      pid: number | undefined;
      from: string;
      /** errno (EROFS, ENOSPC, ...) or error code (HW_ERR_DUMP_TRUNCATED, ...). */
      reason: string;
      /** The error's own code: HW_ERR_* when highwater raised it, else the errno, else HW_ERR_INTERNAL. */
      code: string;
      message: string;
      /** Where the raw data is now (a copy next to the reports, or the original in the run dir). */
      kept: string;
      /** The report, when it was built and only writing it failed (a full or read-only volume). */
      report?: ReportJson;
      /** As for `report`: from a state file. */
      postMortem: boolean;
    };

export interface RunDirWatcherOptions {
  runDir: string;
  outputDir: string;
  config: HeuristicsConfig & { pollIntervalMs: number };
  /** Emit `no-process` once when no state file appeared within this time; 0 = never. @default 5000 */
  expectProcessWithinMs?: number;
  /** A remote process whose status is older than this and whose socket does not answer is gone. @default 2000 */
  staleAfterMs?: number;
  /** Timeout of one control command. @default 1000 */
  controlTimeoutMs?: number;
  /** On stop, ask processes still running for a dump (a report of the peak so far). @default true */
  dumpOnStop?: boolean;
  /**
   * The run dir belongs to this watcher's owner (`highwater run`): every
   * process in it is of this container (readings from its cgroup, source
   * lines from this filesystem, alive while its pid is, whatever its cmdline
   * becomes), and once stopped nothing writes to it any more, so a state file
   * that never became readable gets its render attempt (and its raw data kept).
   * @default false
   */
  ownsRunDir?: boolean;
  /** Roots and logger for the cgroup readings. */
  readOptions?: ReadOptions;
  /** The `oom_kill` count of the watcher's own cgroup before the program started (OomKillWatch). */
  oomKillsBefore?: number;
  renderOptions?: RenderOptions;
  /**
   * Several processes in the run dir get one container-wide report
   * (watcher/container.ts) instead of one report each. @default true
   */
  containerWide?: boolean;
  /**
   * `highwater python`: highwater.api.profile() writes the reports, and a
   * process that stopped tracking before it ended (a child of a profile()
   * call, which left its dump to that call) gets no post-mortem here.
   */
  apiMode?: boolean;
}

interface Tracked {
  pid: number;
  statePath: string;
  sockPath: string;
  ino: number;
  header: StateHeader;
  /** Seen in this PID namespace with the recorded cmdline. */
  local: boolean;
  /** When it started (processStartTicks), read when it was first seen local. */
  localStartTicks?: number;
  readings: Readings | undefined;
  /** The floor its shim published, once seen (the shim owns the floor). */
  floorSeen: number | undefined;
  oomSent: boolean;
  lastReadingError: string | undefined;
  warned: Set<string>;
  failedCommands: Set<string>;
  pingFailures: number;
  /** A dump of this process was seen: its story is told, no post-mortem. */
  hasDump: boolean;
  /** The control socket file existed at some point. */
  sockSeen: boolean;
  lastPingMs: number;
  /**
   * Its readings were taken once (check ran). Until then the metrics leave
   * it out: a scrape between the pass that found it and its first check saw
   * its peak but no available memory (seen as a fast watch-cli failure under
   * load, locally).
   */
  checked: boolean;
}

/** Per-process values for the metrics. */
export interface TrackedSample {
  pid: number;
  peakBytes: number;
  currentBytes: number;
  availableBytes: number | undefined;
  limitBytes: number | undefined;
  workingSetBytes: number | undefined;
  swapBytes: number | undefined;
  floorBytes: number | undefined;
}

/** Largest raw file copied next to the reports when it could not be rendered. */
const MAX_KEPT_BYTES = 1024 * 1024 * 1024;

function errorReason(e: unknown): string {
  const cause = (e as { cause?: NodeJS.ErrnoException } | null)?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (isHighwaterError(e)) return e.code;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'error';
}

function errorCode(e: unknown): string {
  if (isHighwaterError(e)) return e.code;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'HW_ERR_INTERNAL';
}

/**
 * The state file's header, read now, says a child (started by a tracked
 * process: not the program, nor a python a shell started) still tracked at
 * its end.
 */
function childStillTracking(path: string): boolean {
  const head = readStateArea(path, 'none');
  if (!head) return false;
  const origin = parseProcessFacts(head.header).origin;
  return parseStateHeader(head.header)?.tracking === true && (origin === 'fork' || origin === 'exec');
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already, or not ours to remove
  }
}

export class RunDirWatcher extends EventEmitter<{ event: [RunDirEvent] }> {
  private readonly tracked = new Map<number, Tracked>();
  /** `pid:ino` of processes already handled (reported or nothing to report). */
  private readonly finished = new Set<string>();
  private readonly seenDumps = new Set<string>();
  /** pids with a dump seen before their state file was (a process that ended fast). */
  private readonly orphanDumpPids = new Set<number>();
  /** pids whose dump could not be rendered: their state file is kept. */
  private readonly failedPids = new Set<number>();
  /** `path\0reason` of run-dir entries already warned about (file-skipped). */
  private readonly skippedSaid = new Set<string>();
  /** pid → path of state files whose header is not (yet) readable. */
  private readonly unparsed = new Map<number, string>();
  /** Children of the owner: their post-mortem waits for childEnded(). */
  private readonly children = new Set<number>();
  private readonly endStatus = new Map<number, EndStatus>();
  private oomSeen = false;
  private readonly queue = new RenderQueue();
  private readonly startedAt = Date.now();
  private sawProcess = false;
  private warnedNoProcess = false;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private running = false;
  private stopping: Promise<void> | undefined;
  private failures = 0;
  private passes = 0;
  /** Container-wide data of every process (issue 12); used once a second process is seen. */
  readonly container: ContainerCollector;
  /** Why the container-wide report is made when the caller knows (the program was SIGKILLed). */
  containerTrigger: Trigger | undefined;
  /** `watch` has no wait status: the cgroups' oom_kill counts say whether the kernel killed part of the tree. */
  private readonly oomKills: OomKillWatch;

  constructor(private readonly opts: RunDirWatcherOptions) {
    super();
    this.container = new ContainerCollector({ runDir: opts.runDir });
    this.oomKills = new OomKillWatch(opts.readOptions, opts.oomKillsBefore);
  }

  /** The container-wide report's trigger: the owner's word, else `killed` when the kernel's OOM killer acted in the tree. */
  private get treeTrigger(): Trigger | undefined {
    return this.containerTrigger ?? (this.oomKills.killed ? 'killed' : undefined);
  }

  /** Several processes: their dumps and ends go to the container-wide report. */
  private get containerWide(): boolean {
    return (this.opts.containerWide ?? true) && this.childSeen.seen;
  }

  /** A tracked child (exec'd or forked by a tracked process) was seen: the run is a process tree. */
  private readonly childSeen = new ChildSeen();

  private observeAll(): void {
    this.container.observe([...this.tracked.values()].map((t) => ({ pid: t.pid, ino: t.ino, statePath: t.statePath, header: t.header, local: t.local })));
  }

  /** Reports that could not be written so far. */
  get failureCount(): number {
    return this.failures;
  }

  /** True once the heuristics fired for some process (an `oom` event). */
  get oomFired(): boolean {
    return this.oomSeen;
  }

  /**
   * The owner started `pid` and will say how it ended (childEnded): until
   * then its post-mortem waits, so that its trigger comes from its wait
   * status, not from a guess.
   */
  watchChild(pid: number): void {
    this.children.add(pid);
    this.container.setTop(pid);
  }

  /** How the owner's child `pid` ended (its wait status). */
  childEnded(pid: number, status: EndStatus): void {
    this.endStatus.set(pid, status);
  }

  /** The tracked processes now, each once checked, for the metrics (never throws). */
  samples(): TrackedSample[] {
    return [...this.tracked.values()]
      .filter((t) => t.checked)
      .map((t) => ({
        pid: t.pid,
        peakBytes: t.header.peakBytes,
        currentBytes: t.header.currentBytes,
        availableBytes: t.readings?.availableBytes,
        limitBytes: t.readings?.limitBytes,
        workingSetBytes: t.readings?.workingSetBytes,
        swapBytes: t.readings?.swapBytes,
        floorBytes: t.floorSeen,
      }));
  }

  /** True once the first pass over the run dir has finished (`/readyz`). */
  get scanned(): boolean {
    return this.passes > 0;
  }

  /** Start polling (first pass now); idempotent. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = (): void => {
      this.inFlight = this.tick().finally(() => {
        this.inFlight = undefined;
        if (this.running) this.timer = setTimeout(loop, this.opts.config.pollIntervalMs);
      });
    };
    loop();
  }

  /**
   * Stop: finish the pass in progress, then one last pass that renders every
   * dump left, the post-mortem of every process gone without one and (with
   * dumpOnStop) a report of the peak so far of processes still running.
   * Resolves when every report is written. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.running = false;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      await this.inFlight;
      await this.finalPass();
    })();
    return this.stopping;
  }

  /** One pass without a loop (`--once`), including the final steps. */
  async runOnce(): Promise<void> {
    await this.finalPass();
  }

  private emitEvent(e: RunDirEvent): void {
    try {
      this.emit('event', e);
    } catch {
      // a listener's bug must not stop the watcher
    }
  }

  /** One poll. Never rejects. */
  async tick(): Promise<void> {
    try {
      const listing = listRunDir(this.opts.runDir);
      this.scanDumps(listing);
      this.discover(listing);
      this.observeAll();
      this.watchOomKills();
      for (const t of [...this.tracked.values()]) {
        if (await this.isAlive(t, false)) {
          await this.check(t);
          t.checked = true;
        } else if (!this.awaitsStatus(t)) this.finish(t);
      }
      this.renderContainerWhenDone();
      this.checkNoProcess();
    } catch (e) {
      this.emitEvent({ type: 'reading-failed', pid: 0, message: `watcher pass failed: ${e instanceof Error ? e.message : String(e)}` });
    }
    this.passes++;
  }

  private async finalPass(): Promise<void> {
    try {
      const listing = listRunDir(this.opts.runDir);
      this.scanDumps(listing);
      this.discover(listing);
      this.observeAll();
      this.watchOomKills();
      const stillRunning: Tracked[] = [];
      for (const t of [...this.tracked.values()]) {
        if (await this.isAlive(t, true)) stillRunning.push(t);
        else this.finish(t);
      }
      if (this.opts.dumpOnStop ?? true) {
        // apiMode: only the program itself; a process started inside a profile() call that outlives it is that call's business.
        for (const t of stillRunning) if (!this.opts.apiMode || this.children.has(t.pid)) await this.send(t, 'dump', 2000);
        this.scanDumps();
      }
      if (this.opts.ownsRunDir) for (const [pid, path] of this.unparsed) this.renderUnparsed(pid, path);
    } catch (e) {
      this.emitEvent({ type: 'reading-failed', pid: 0, message: `watcher pass failed: ${e instanceof Error ? e.message : String(e)}` });
    }
    await this.queue.idle();
    if (this.containerWide && this.container.processCount > 0) {
      this.renderContainer(this.treeTrigger);
      await this.queue.idle();
    }
  }

  /**
   * `highwater watch`: once every process of the tree has ended (after the
   * jobs that resolve their ends), its report is written, and the next
   * processes in the run dir are a new run.
   */
  private renderContainerWhenDone(): void {
    // `highwater run` (children of the owner): once, at the stop, with how its program ended.
    if (this.children.size > 0 || !this.containerWide || this.tracked.size > 0 || this.containerQueued) return;
    this.containerQueued = true; // one check at a time: the render and the reset below run before the next
    this.queue.push('container', async () => {
      if (this.tracked.size > 0 || !this.container.allEnded) {
        this.containerQueued = false;
        return;
      }
      this.renderContainer(this.treeTrigger);
      this.queue.push('container-reset', async () => {
        this.container.reset();
        this.childSeen.reset();
        this.oomKills.reset();
        this.containerQueued = false;
      });
    });
  }

  private containerQueued = false;

  /** The container-wide report of every process (at the end, or on SIGUSR2 to the program). */
  private renderContainer(trigger: Trigger | undefined): void {
    this.render(
      undefined,
      'container',
      trigger === 'killed',
      () => {},
      () => {
        const killAfterMs = trigger === 'killed' && this.containerTrigger === undefined ? this.oomKills.quietUntilMs : undefined;
        return this.container.render(this.opts.outputDir, this.opts.renderOptions, {
          ...(trigger ? { trigger } : {}),
          ...(killAfterMs !== undefined ? { killAfterMs } : {}),
        });
      },
    );
  }

  /** Local processes of the tree: their cgroups' OOM-kill counts, every pass. */
  private watchOomKills(): void {
    for (const t of this.tracked.values()) if (t.local) this.oomKills.watch(t.pid);
    this.oomKills.poll();
  }

  private checkNoProcess(): void {
    const within = this.opts.expectProcessWithinMs ?? 5000;
    if (this.sawProcess || this.warnedNoProcess || within <= 0) return;
    if (Date.now() - this.startedAt < within) return;
    this.warnedNoProcess = true;
    this.emitEvent({ type: 'no-process', runDir: this.opts.runDir, afterMs: within });
  }

  private skipped(path: string, reason: string): void {
    const key = `${path}\0${reason}`;
    if (this.skippedSaid.has(key)) return;
    this.skippedSaid.add(key);
    this.emitEvent({ type: 'file-skipped', path, reason });
  }

  /** A child of the owner that ended, whose wait status the owner has not given yet. */
  private awaitsStatus(t: Tracked): boolean {
    return this.children.has(t.pid) && !this.endStatus.has(t.pid);
  }

  /** New complete dumps → the render queue. */
  private scanDumps(listing: RunDirListing = listRunDir(this.opts.runDir)): void {
    for (const s of listing.skipped) this.skipped(s.path, `${s.kind}, not read`);
    this.childSeen.check(listing.states);
    for (const d of listing.dumps) {
      if (this.seenDumps.has(d.path)) continue;
      this.seenDumps.add(d.path);
      // hw-api-*.dump files are rendered by highwater.api itself.
      if (d.pid === undefined) continue;
      const t = this.tracked.get(d.pid);
      if (t) t.hasDump = true;
      else this.orphanDumpPids.add(d.pid);
      if (this.containerWide) this.takeDump(d);
      else this.renderDump(d);
    }
  }

  private discover(listing: RunDirListing): void {
    const states = listing.states;
    this.unparsed.clear();
    for (const [pid, statePath] of states) {
      const read = readStateHeader(statePath);
      if (!read) {
        this.unparsed.set(pid, statePath); // not complete yet, or just removed
        continue;
      }
      if ('problem' in read) {
        this.skipped(statePath, `cannot read the state file: ${read.problem}`);
        continue;
      }
      let t = this.tracked.get(pid);
      if (t && t.ino !== read.ino) {
        // The pid was reused by a new process; the old file is gone with its data.
        this.tracked.delete(pid);
        t = undefined;
      }
      if (!t) {
        if (this.finished.has(`${pid}:${read.ino}`)) continue;
        this.failedPids.delete(pid);
        const local = this.opts.ownsRunDir === true || this.identify(pid, read.header.argv) === 'same';
        t = {
          pid,
          statePath,
          sockPath: join(this.opts.runDir, `hw-${pid}.sock`),
          ino: read.ino,
          header: read.header,
          local,
          readings: undefined,
          floorSeen: undefined,
          oomSent: false,
          lastReadingError: undefined,
          warned: new Set(),
          failedCommands: new Set(),
          pingFailures: 0,
          hasDump: this.orphanDumpPids.delete(pid),
          sockSeen: false,
          lastPingMs: 0,
          checked: false,
        };
        this.tracked.set(pid, t);
        this.sawProcess = true;
        this.emitEvent({ type: 'process-found', pid, argv: read.header.argv, local });
      }
      t.header = read.header;
      this.noteOomExit(t);
    }
    // A state file removed by someone else: nothing left to report from.
    for (const [pid, t] of this.tracked)
      if (!states.has(pid)) {
        this.tracked.delete(pid);
        this.finished.add(`${pid}:${t.ino}`);
      }
  }

  private get procRoot(): string {
    return this.opts.readOptions?.procRoot ?? '/proc';
  }

  /**
   * Is `pid` the process that wrote this state file? In a run dir of its own
   * every process is ours: the pid alone says it (a program may rewrite its
   * cmdline); elsewhere the cmdline must match too (identity.ts).
   */
  private identify(pid: number, argv: string[]): Identity {
    if (!this.opts.ownsRunDir) return processIdentity(this.procRoot, pid, argv);
    const id = processIdentity(this.procRoot, pid, argv);
    return id === 'other' ? 'same' : id;
  }

  /**
   * Local process: alive while /proc/<pid> is it. Remote process (another
   * PID namespace): gone when its socket file went away (the shim removes it
   * at exit) or refuses connections (killed); a socket that merely does not
   * answer counts only once the status is stale, twice in a row (once when
   * stopping).
   */
  private async isAlive(t: Tracked, final: boolean): Promise<boolean> {
    const id = this.identify(t.pid, t.header.argv);
    if (id === 'same') {
      t.local = true;
      t.localStartTicks ??= processStartTicks(this.procRoot, t.pid);
      return true;
    }
    if (t.local) {
      // It was here. Another cmdline under its pid is still it when it
      // started at the same tick: it exec'd another program (whose state
      // file takes over the pid's, docs/multiprocess.md), or rewrote its
      // cmdline. Taken for gone, its state file was removed under it.
      return id === 'other' && t.localStartTicks !== undefined && processStartTicks(this.procRoot, t.pid) === t.localStartTicks;
    }
    const stale = Date.now() - t.header.updatedMs > (this.opts.staleAfterMs ?? 2000);
    if (!existsSync(t.sockPath)) {
      // Never seen: maybe not created yet, unless the process already wrote its dump or stopped updating.
      return !(t.sockSeen || t.hasDump || stale || final);
    }
    t.sockSeen = true;
    // A process that wrote a dump may have ended already (an exit dump): ask, at most twice a second.
    const probe = stale || final || (t.hasDump && Date.now() - t.lastPingMs >= 500);
    if (!probe) return true;
    t.lastPingMs = Date.now();
    const answer = await this.ping(t);
    if (answer === 'ok') {
      t.pingFailures = 0;
      return true;
    }
    if (answer === 'refused' || answer === 'missing') return false;
    t.pingFailures++;
    return !(final || (stale && t.pingFailures >= 2));
  }

  private async ping(t: Tracked): Promise<'ok' | 'refused' | 'missing' | 'failed'> {
    try {
      const a = await sendControl(t.sockPath, 'ping', { timeoutMs: this.opts.controlTimeoutMs ?? 1000 });
      return a.startsWith('ok highwater ') ? 'ok' : 'failed';
    } catch (e) {
      const code = ((e as { cause?: { code?: unknown } }).cause?.code ?? '') as string;
      return code === 'ECONNREFUSED' ? 'refused' : code === 'ENOENT' ? 'missing' : 'failed';
    }
  }

  /** Readings, heuristics, floor and oom commands for a live process. */
  private async check(t: Tracked): Promise<void> {
    let readings: Readings | undefined;
    if (t.local) {
      try {
        const held: Array<[object, string]> = [];
        readings = readReadings(t.pid, { ...this.opts.readOptions, logger: { warn: (o, m) => void held.push([o, m]) }, warned: t.warned });
        if (held.length > 0 && this.identify(t.pid, t.header.argv) !== 'same') return; // ended mid-read
        for (const [o, m] of held) this.opts.readOptions?.logger?.warn({ ...o, pid: t.pid }, m);
        t.lastReadingError = undefined;
      } catch (e) {
        if (this.identify(t.pid, t.header.argv) !== 'same') return;
        const message = e instanceof Error ? e.message : String(e);
        if (message !== t.lastReadingError) this.emitEvent({ type: 'reading-failed', pid: t.pid, message });
        t.lastReadingError = message;
        return;
      }
    } else if (Date.now() - t.header.updatedMs <= (this.opts.staleAfterMs ?? 2000)) {
      readings = readingsFromHeader(t.header);
    }
    t.readings = readings;
    if (!readings) return;

    // The shim owns the floor (docs/protocol.md): the rule here judges by the
    // floor in force in the process's guard, and sets none of its own. Until
    // the shim has published one (its first look at the readings), the floor
    // from this watcher's --min-available.
    const shimFloor = t.header.floorBytes;
    if (shimFloor > 0 && t.floorSeen !== shimFloor) {
      t.floorSeen = shimFloor;
      this.emitEvent({ type: 'floor-set', pid: t.pid, floorBytes: shimFloor });
    }
    const verdict = checkOom(readings, this.opts.config, shimFloor > 0 ? shimFloor : undefined);
    if (verdict.oom && !t.oomSent) {
      t.oomSent = true;
      this.oomSeen = true;
      this.emitEvent({ type: 'oom', pid: t.pid, reason: verdict.reason, detail: verdict.detail, readings });
      await this.send(t, `oom ${verdict.reason}`, 5000);
    }
  }

  private async send(t: Tracked, command: string, timeoutMs = this.opts.controlTimeoutMs ?? 1000): Promise<string | undefined> {
    const verb = command.split(' ')[0]!;
    try {
      const answer = await sendControl(t.sockPath, command, { timeoutMs });
      if (answer === 'ok' || answer.startsWith('ok ')) {
        t.failedCommands.delete(verb);
        return answer;
      }
      this.controlFailed(t, verb, command, `answered "${answer}"`);
    } catch (e) {
      this.controlFailed(t, verb, command, e instanceof Error ? e.message : String(e));
    }
    return undefined;
  }

  private controlFailed(t: Tracked, verb: string, command: string, message: string): void {
    if (t.failedCommands.has(verb)) return;
    t.failedCommands.add(verb);
    this.emitEvent({ type: 'control-failed', pid: t.pid, command, message });
  }

  /** The process is gone: render its post-mortem unless a dump told its story. */
  /** The shim is ending the process for OOM (its header says why): once, and no command is sent to it after. */
  private noteOomExit(t: Tracked): void {
    if (t.header.oomReason === null || t.oomSent) return;
    t.oomSent = true; // nothing left to tell it: it is writing its dump and exiting 53
    this.emitEvent({ type: 'oom-exit', pid: t.pid, reason: t.header.oomReason });
  }

  private finish(t: Tracked): void {
    this.refreshHeader(t);
    this.noteOomExit(t); // set after this watcher's last pass read the header
    this.tracked.delete(t.pid);
    this.finished.add(`${t.pid}:${t.ino}`);
    this.emitEvent({ type: 'process-gone', pid: t.pid, local: t.local });
    if (!t.hasDump && !t.header.python) this.emitEvent({ type: 'not-started', pid: t.pid, argv: t.header.argv });
    this.oomKills.poll(); // now, while its cgroup is still there
    this.oomKills.forget(t.pid);
    this.scanDumps(); // a dump written just before the end
    if (this.containerWide) {
      // Its part of the container-wide report is resolved from its state file, which can go then.
      this.queue.push(t.statePath, async () => {
        await this.container.ended(t.pid, t.ino, t.statePath, !t.hasDump);
        if (!this.failedPids.has(t.pid)) this.retire(t);
      });
      return;
    }
    if (this.opts.apiMode && !t.hasDump && !this.children.has(t.pid) && childStillTracking(t.statePath)) {
      // Started inside a highwater.api.profile() call and ended still tracking
      // (a fork worker's os._exit, a pool's terminate()): its state file is
      // that call's report part (report/api-children.ts), which removes it.
      tryUnlink(t.sockPath);
      return;
    }
    if (t.hasDump) {
      // After its dump is rendered; a dump that failed keeps the state file as well.
      this.queue.push(t.statePath, async () => {
        if (!this.failedPids.has(t.pid)) this.retire(t);
      });
      return;
    }
    const trigger = this.opts.apiMode && !t.header.tracking ? undefined : postMortemTrigger(t.header, this.endStatus.get(t.pid));
    if (trigger === undefined) {
      this.retire(t); // tracking was off: nothing to report
      return;
    }
    this.render(
      t.pid,
      t.statePath,
      true,
      () => this.retire(t),
      async () => {
        // Source lines come from disk only for a process of this container: the
        // paths a remote process names are files of *its* filesystem, and the
        // same path here is another file (a wrong line, or one of ours leaked).
        const data = await readStateFile(t.statePath, { trigger, ...(t.local ? {} : { readSource: () => undefined }) });
        return renderReport(data, this.opts.outputDir, this.opts.renderOptions);
      },
    );
  }

  /**
   * The header as the process left it. The one read at the start of this
   * pass can predate its last words, written right before it ended (a call's
   * child stopping tracking at its exit, the shim's exit status 53), and the
   * rule judges by those: a stale `tracking` made a `killed` report of a
   * forkserver that had ended by itself after the call (CI, under load).
   */
  private refreshHeader(t: Tracked): void {
    const read = readStateHeader(t.statePath);
    if (read && !('problem' in read) && read.ino === t.ino) t.header = read.header;
  }

  /** Remove the files of an ended, reported process; its pid and inode may come back as a new process. */
  private retire(t: Tracked): void {
    tryUnlink(t.sockPath);
    tryUnlink(t.statePath);
    removeDumpLeftovers(this.opts.runDir, t.pid); // a dump cut short by its end
    this.finished.delete(`${t.pid}:${t.ino}`);
  }

  /**
   * Container-wide: the dump's data goes to the collector (its process's own
   * report, its OOM snapshot) and the file is removed; a SIGUSR2 dump of the
   * program asks for a container-wide report now.
   */
  private takeDump(d: DumpFile): void {
    const pid = d.pid!;
    this.queue.push(d.path, async () => {
      try {
        const data = await this.container.takeDump(pid, d.path);
        tryUnlink(d.path);
        if (data.trigger === 'signal') this.renderContainer('signal');
      } catch (e) {
        this.failures++;
        this.failedPids.add(pid);
        this.emitEvent({
          type: 'report-failed',
          pid,
          from: d.path,
          reason: errorReason(e),
          code: errorCode(e),
          message: e instanceof Error ? e.message : String(e),
          kept: await this.keepRaw(d.path, e),
          postMortem: false,
        });
      }
    });
  }

  private renderDump(d: DumpFile): void {
    this.render(
      d.pid,
      d.path,
      false,
      () => tryUnlink(d.path),
      () => renderDumpFile(d.path, this.opts.outputDir, this.opts.renderOptions),
    );
  }

  /**
   * Stopped, in a run dir of our own: a state file whose header never became
   * readable gets its post-mortem attempt, whose error says what is wrong
   * with it (and whose raw data is then kept).
   */
  private renderUnparsed(pid: number, statePath: string): void {
    // Its header cannot say whether it tracked: the trigger is the end's alone.
    const trigger: Trigger = postMortemTrigger({ exitStatus: 0, tracking: true, peakBytes: 0 }, this.endStatus.get(pid)) ?? 'killed';
    this.unparsed.delete(pid);
    if (this.containerWide) {
      // A process of the tree that never published its header (a pool worker
      // stopped while it started): nothing of it is in the container's sum.
      tryUnlink(statePath);
      return;
    }
    this.render(
      pid,
      statePath,
      true,
      () => tryUnlink(statePath),
      async () => renderReport(await readStateFile(statePath, { trigger }), this.opts.outputDir, this.opts.renderOptions),
    );
  }

  /** Queue one render; on success `done()`, on failure keep the raw data and say where. */
  private render(pid: number | undefined, from: string, postMortem: boolean, done: () => void, job: () => Promise<{ dir: string; report: ReportJson }>): void {
    this.queue.push(from, async () => {
      let result: { dir: string; report: ReportJson };
      try {
        result = await job();
      } catch (e) {
        this.failures++;
        if (pid !== undefined) this.failedPids.add(pid);
        const built = reportNotWritten(e);
        this.emitEvent({
          type: 'report-failed',
          pid,
          from,
          reason: errorReason(e),
          code: errorCode(e),
          message: e instanceof Error ? e.message : String(e),
          kept: await this.keepRaw(from, e),
          ...(built ? { report: built } : {}),
          postMortem,
        });
        return;
      }
      done();
      this.emitEvent({ type: 'report', pid, from, dir: result.dir, report: result.report, postMortem });
    });
  }

  /**
   * A copy of the raw file next to the reports when possible; else it stays
   * where it is. Never a copy of what a link points at or of a special file
   * (copyOut refuses them), never written through a name planted in the
   * output dir (created exclusively), and a sparse state file stays sparse.
   */
  private async keepRaw(path: string, err: unknown): Promise<string> {
    if (isHighwaterError(err, 'HW_ERR_INPUT_UNREADABLE') || isHighwaterError(err, 'HW_ERR_INPUT_TOO_LARGE')) return path;
    try {
      return await copyOut(path, this.opts.outputDir, MAX_KEPT_BYTES);
    } catch {
      return path;
    }
  }
}
