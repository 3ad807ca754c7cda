/**
 * The watcher of a whole run dir (`highwater watch`): every tracked process
 * (`hw-<pid>.state`) gets readings, the OOM heuristics and `floor`/`oom`
 * commands on its own control socket; every new complete dump is rendered
 * once; a process that disappears without a dump gets a post-mortem report
 * from its state file. Readings come from the process's cgroup when it runs
 * in this container (same pid *and* same cmdline), otherwise from the status
 * the shim publishes in the state file header every 250 ms.
 *
 * It never throws into its loop: everything is reported as a RunDirEvent.
 * Rendered dumps and the files of ended processes are removed from the run
 * dir; whatever could not be rendered stays (and is named in the event).
 */
import { EventEmitter } from 'node:events';
import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isHighwaterError } from '../errors.js';
import { checkOom, type HeuristicsConfig } from '../memory/heuristics.js';
import { readReadings, type ReadOptions, type Readings } from '../memory/read.js';
import type { ReportJson, Trigger } from '../report/model.js';
import { renderDumpFile, renderReport, type RenderOptions } from '../report/render.js';
import { copyOut } from '../report/safe-file.js';
import { readStateFile } from '../report/state.js';
import { ChildSeen, ContainerCollector } from './container.js';
import { sendControl } from './control.js';
import { processIdentity } from './identity.js';
import { removeDumpLeftovers } from './leftovers.js';
import { RenderQueue } from './render-queue.js';
import { listRunDir, type DumpFile } from './rundir.js';
import { readingsFromHeader, readStateHeader, type StateHeader } from './state-header.js';

export type RunDirEvent =
  | { type: 'process-found'; pid: number; argv: string[]; local: boolean }
  | { type: 'process-gone'; pid: number; local: boolean }
  | { type: 'no-process'; runDir: string; afterMs: number }
  | { type: 'reading-failed'; pid: number; message: string }
  /** A run-dir entry that is never read (a symlink, FIFO, device, an unreadable state file); once per path and reason. */
  | { type: 'file-skipped'; path: string; reason: string }
  | { type: 'floor-set'; pid: number; floorBytes: number }
  | { type: 'oom'; pid: number; reason: 'low-available' | 'swap'; detail: string; readings: Readings }
  | { type: 'control-failed'; pid: number; command: string; message: string }
  | { type: 'report'; pid: number | undefined; from: string; dir: string; report: ReportJson }
  | {
      type: 'report-failed';
      pid: number | undefined;
      from: string;
      /** errno (EROFS, ENOSPC, ...) or error code (HW_ERR_DUMP_TRUNCATED, ...). */
      reason: string;
      message: string;
      /** Where the raw data is now (a copy next to the reports, or the original in the run dir). */
      kept: string;
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
  /** Roots and logger for the cgroup readings. */
  readOptions?: ReadOptions;
  renderOptions?: RenderOptions;
  /**
   * Several processes in the run dir get one container-wide report
   * (watcher/container.ts) instead of one report each. @default true
   */
  containerWide?: boolean;
  /** The program `highwater run` started: report.json `process` of a container-wide report. */
  topPid?: number;
}

interface Tracked {
  pid: number;
  statePath: string;
  sockPath: string;
  ino: number;
  header: StateHeader;
  /** Seen in this PID namespace with the recorded cmdline. */
  local: boolean;
  readings: Readings | undefined;
  floorSent: number | undefined;
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

  constructor(private readonly opts: RunDirWatcherOptions) {
    super();
    this.container = new ContainerCollector({ runDir: opts.runDir, ...(opts.topPid !== undefined ? { topPid: opts.topPid } : {}) });
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

  /** The tracked processes now, for the metrics (never throws). */
  samples(): TrackedSample[] {
    return [...this.tracked.values()].map((t) => ({
      pid: t.pid,
      peakBytes: t.header.peakBytes,
      currentBytes: t.header.currentBytes,
      availableBytes: t.readings?.availableBytes,
      limitBytes: t.readings?.limitBytes,
      workingSetBytes: t.readings?.workingSetBytes,
      swapBytes: t.readings?.swapBytes,
      floorBytes: t.floorSent,
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
      this.scanDumps();
      this.discover();
      this.observeAll();
      for (const t of [...this.tracked.values()]) {
        if (!(await this.isAlive(t, false))) this.finish(t);
        else await this.check(t);
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
      this.scanDumps();
      this.discover();
      this.observeAll();
      const stillRunning: Tracked[] = [];
      for (const t of [...this.tracked.values()]) {
        if (await this.isAlive(t, true)) stillRunning.push(t);
        else this.finish(t);
      }
      if (this.opts.dumpOnStop ?? true) {
        for (const t of stillRunning) await this.send(t, 'dump', 2000);
        this.scanDumps();
      }
    } catch (e) {
      this.emitEvent({ type: 'reading-failed', pid: 0, message: `watcher pass failed: ${e instanceof Error ? e.message : String(e)}` });
    }
    await this.queue.idle();
    if (this.containerWide && this.container.processCount > 0) {
      this.renderContainer(this.containerTrigger);
      await this.queue.idle();
    }
  }

  /**
   * `highwater watch`: once every process of the tree has ended (after the
   * jobs that resolve their ends), its report is written, and the next
   * processes in the run dir are a new run.
   */
  private renderContainerWhenDone(): void {
    if (!this.containerWide || this.tracked.size > 0 || this.containerQueued) return;
    this.containerQueued = true; // one check at a time: the render and the reset below run before the next
    this.queue.push('container', async () => {
      if (this.tracked.size > 0 || !this.container.allEnded) {
        this.containerQueued = false;
        return;
      }
      this.renderContainer(this.containerTrigger);
      this.queue.push('container-reset', async () => {
        this.container.reset();
        this.childSeen.reset();
        this.containerQueued = false;
      });
    });
  }

  private containerQueued = false;

  /** The container-wide report of every process (at the end, or on SIGUSR2 to the program). */
  private renderContainer(trigger: Trigger | undefined): void {
    this.render(undefined, 'container', () => {}, () =>
      this.container.render(this.opts.outputDir, this.opts.renderOptions, trigger ? { trigger } : {}),
    );
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

  /** New complete dumps → the render queue. */
  private scanDumps(): void {
    const listing = listRunDir(this.opts.runDir);
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

  private discover(): void {
    const states = listRunDir(this.opts.runDir).states;
    for (const [pid, statePath] of states) {
      const read = readStateHeader(statePath);
      if (!read) continue; // not complete yet, or just removed
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
        const local = processIdentity(this.procRoot, pid, read.header.argv) === 'same';
        t = {
          pid,
          statePath,
          sockPath: join(this.opts.runDir, `hw-${pid}.sock`),
          ino: read.ino,
          header: read.header,
          local,
          readings: undefined,
          floorSent: undefined,
          oomSent: false,
          lastReadingError: undefined,
          warned: new Set(),
          failedCommands: new Set(),
          pingFailures: 0,
          hasDump: this.orphanDumpPids.delete(pid),
          sockSeen: false,
          lastPingMs: 0,
        };
        this.tracked.set(pid, t);
        this.sawProcess = true;
        this.emitEvent({ type: 'process-found', pid, argv: read.header.argv, local });
      }
      t.header = read.header;
    }
    // A state file removed by someone else: nothing left to report from.
    for (const [pid, t] of this.tracked) if (!states.has(pid)) {
      this.tracked.delete(pid);
      this.finished.add(`${pid}:${t.ino}`);
    }
  }

  private get procRoot(): string {
    return this.opts.readOptions?.procRoot ?? '/proc';
  }

  /**
   * Local process: alive while /proc/<pid> is it. Remote process (another
   * PID namespace): gone when its socket file went away (the shim removes it
   * at exit) or refuses connections (killed); a socket that merely does not
   * answer counts only once the status is stale, twice in a row (once when
   * stopping).
   */
  private async isAlive(t: Tracked, final: boolean): Promise<boolean> {
    const id = processIdentity(this.procRoot, t.pid, t.header.argv);
    if (id === 'same') {
      t.local = true;
      return true;
    }
    if (t.local) return false; // it was here and is not any more (exited, or the pid was reused)
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
        if (held.length > 0 && processIdentity(this.procRoot, t.pid, t.header.argv) !== 'same') return; // ended mid-read
        for (const [o, m] of held) this.opts.readOptions?.logger?.warn({ ...o, pid: t.pid }, m);
        t.lastReadingError = undefined;
      } catch (e) {
        if (processIdentity(this.procRoot, t.pid, t.header.argv) !== 'same') return;
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

    const verdict = checkOom(readings, this.opts.config);
    if (t.floorSent !== verdict.floorBytes) {
      if (await this.send(t, `floor ${verdict.floorBytes}`)) {
        t.floorSent = verdict.floorBytes;
        this.emitEvent({ type: 'floor-set', pid: t.pid, floorBytes: verdict.floorBytes });
      }
    }
    if (verdict.oom && !t.oomSent) {
      t.oomSent = true;
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
  private finish(t: Tracked): void {
    this.tracked.delete(t.pid);
    this.finished.add(`${t.pid}:${t.ino}`);
    this.emitEvent({ type: 'process-gone', pid: t.pid, local: t.local });
    this.scanDumps(); // a dump written just before the end
    if (this.containerWide) {
      // Its part of the container-wide report is resolved from its state file, which can go then.
      this.queue.push(t.statePath, async () => {
        await this.container.ended(t.pid, t.ino, t.statePath, !t.hasDump);
        if (!this.failedPids.has(t.pid)) this.retire(t);
      });
      return;
    }
    if (t.hasDump) {
      // After its dump is rendered; a dump that failed keeps the state file as well.
      this.queue.push(t.statePath, async () => {
        if (!this.failedPids.has(t.pid)) this.retire(t);
      });
      return;
    }
    if (t.header.peakBytes === 0 && !t.header.tracking) {
      this.retire(t); // tracking never ran (python mode without the API): nothing to report
      return;
    }
    const trigger: Trigger = t.header.exitStatus === 0x100 + 53 ? 'oom' : 'killed';
    this.render(t.pid, t.statePath, () => this.retire(t), async () => {
      // Source lines come from disk only for a process of this container: the
      // paths a remote process names are files of *its* filesystem, and the
      // same path here is another file (a wrong line, or one of ours leaked).
      const data = await readStateFile(t.statePath, { trigger, ...(t.local ? {} : { readSource: () => undefined }) });
      return renderReport(data, this.opts.outputDir, this.opts.renderOptions);
    });
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
        this.emitEvent({ type: 'report-failed', pid, from: d.path, reason: errorReason(e), message: e instanceof Error ? e.message : String(e), kept: await this.keepRaw(d.path, e) });
      }
    });
  }

  private renderDump(d: DumpFile): void {
    this.render(d.pid, d.path, () => tryUnlink(d.path), () => renderDumpFile(d.path, this.opts.outputDir, this.opts.renderOptions));
  }

  /** Queue one render; on success `done()`, on failure keep the raw data and say where. */
  private render(
    pid: number | undefined,
    from: string,
    done: () => void,
    job: () => Promise<{ dir: string; report: ReportJson }>,
  ): void {
    this.queue.push(from, async () => {
      let result: { dir: string; report: ReportJson };
      try {
        result = await job();
      } catch (e) {
        this.failures++;
        if (pid !== undefined) this.failedPids.add(pid);
        this.emitEvent({
          type: 'report-failed',
          pid,
          from,
          reason: errorReason(e),
          message: e instanceof Error ? e.message : String(e),
          kept: await this.keepRaw(from, e),
        });
        return;
      }
      done();
      this.emitEvent({ type: 'report', pid, from, dir: result.dir, report: result.report });
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
