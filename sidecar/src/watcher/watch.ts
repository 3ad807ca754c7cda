/**
 * The watcher: every pollIntervalMs it takes the readings of the tracked
 * process, runs the OOM heuristics and talks to every shim in the run dir:
 * `floor <bytes>` when a shim appears and whenever the floor changes, and
 * `oom <reason>` once when the heuristics fire. It never throws into its
 * timer; everything it does is reported as a WatcherEvent.
 */
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkOom, type HeuristicsConfig } from '../memory/heuristics.js';
import { readReadings, type ReadOptions, type Readings } from '../memory/read.js';
import { sendControl } from './control.js';
import { listRunDir } from './rundir.js';

export type WatcherEvent =
  | { type: 'started'; pid: number; runDir: string }
  | { type: 'readings'; readings: Readings; floorBytes: number }
  | { type: 'reading-failed'; message: string }
  | { type: 'floor-set'; socket: string; floorBytes: number }
  | { type: 'oom'; reason: 'low-available' | 'swap'; detail: string; readings: Readings; floorBytes: number }
  | { type: 'oom-sent'; socket: string; answer: string }
  | { type: 'control-failed'; socket: string; command: string; message: string }
  | { type: 'stopped' };

export interface WatcherOptions {
  /** The process whose memory cgroup is read. */
  pid: number;
  runDir: string;
  config: HeuristicsConfig & { pollIntervalMs: number };
  /** Roots and logger for readReadings (fixture trees in tests). */
  readOptions?: ReadOptions;
  /** Timeout of one control command. @default 1000 */
  controlTimeoutMs?: number;
}

/** The process exists and is not a zombie. */
function isAlive(procRoot: string, pid: number): boolean {
  try {
    const stat = readFileSync(join(procRoot, String(pid), 'stat'), 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch (e) {
    // fixture trees have no stat file: only a missing process directory means gone
    return existsSync(join(procRoot, String(pid))) && (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export class Watcher extends EventEmitter<{ event: [WatcherEvent] }> {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly floorSent = new Map<string, number>();
  private readonly failed = new Set<string>();
  private readonly warned = new Set<string>();
  private lastReadingError: string | undefined;
  private oomFiredFlag = false;
  private lastOom: Extract<WatcherEvent, { type: 'oom' }> | undefined;

  constructor(private readonly opts: WatcherOptions) {
    super();
  }

  /** True once the heuristics fired and `oom` was sent. */
  get oomFired(): boolean {
    return this.oomFiredFlag;
  }

  /** The `oom` event, if the heuristics fired. */
  get oomEvent(): Extract<WatcherEvent, { type: 'oom' }> | undefined {
    return this.lastOom;
  }

  /** Start polling (first tick now); idempotent. */
  start(): void {
    if (this.timer) return;
    this.emit('event', { type: 'started', pid: this.opts.pid, runDir: this.opts.runDir });
    this.timer = setInterval(() => this.tickOnce(), this.opts.config.pollIntervalMs);
    this.timer.unref();
    this.tickOnce();
  }

  /** Stop polling and wait for a tick in progress; safe to call at any time, any number of times. */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
    this.emit('event', { type: 'stopped' });
  }

  private tickOnce(): void {
    if (this.inFlight) return; // the previous tick is still talking to a shim
    this.inFlight = this.tick().finally(() => {
      this.inFlight = undefined;
    });
  }

  /** One poll: readings, heuristics, control commands. Never rejects. */
  async tick(): Promise<void> {
    const { pid, runDir, config } = this.opts;
    const procRoot = this.opts.readOptions?.procRoot ?? '/proc';
    if (!existsSync(join(procRoot, String(pid)))) return; // the process is gone: nothing to read
    let readings: Readings;
    // Warnings are held back until we know the process did not end during the read
    // (reading /proc/<pid>/* of a process that just exited fails; that is no degradation).
    const pending: Array<[object, string]> = [];
    const held = { warn: (o: object, m: string) => void pending.push([o, m]) };
    try {
      readings = readReadings(pid, { ...this.opts.readOptions, logger: held, warned: this.warned });
      if (pending.length > 0 && !isAlive(procRoot, pid)) {
        this.warned.clear();
        return;
      }
      for (const [o, m] of pending) this.opts.readOptions?.logger?.warn(o, m);
    } catch (e) {
      if (!isAlive(procRoot, pid)) return;
      const message = e instanceof Error ? e.message : String(e);
      if (message !== this.lastReadingError) this.emit('event', { type: 'reading-failed', message });
      this.lastReadingError = message;
      return;
    }
    this.lastReadingError = undefined;
    const verdict = checkOom(readings, config);
    this.emit('event', { type: 'readings', readings, floorBytes: verdict.floorBytes });

    const sockets = [...listRunDir(runDir).sockets.values()];
    for (const socket of sockets) {
      if (this.floorSent.get(socket) === verdict.floorBytes) continue;
      const answer = await this.send(socket, `floor ${verdict.floorBytes}`);
      if (answer !== undefined) {
        this.floorSent.set(socket, verdict.floorBytes);
        this.emit('event', { type: 'floor-set', socket, floorBytes: verdict.floorBytes });
      }
    }

    if (verdict.oom && !this.oomFiredFlag && sockets.length > 0) {
      this.oomFiredFlag = true;
      this.lastOom = { type: 'oom', reason: verdict.reason, detail: verdict.detail, readings, floorBytes: verdict.floorBytes };
      this.emit('event', this.lastOom);
      for (const socket of sockets) {
        const answer = await this.send(socket, `oom ${verdict.reason}`);
        if (answer !== undefined) this.emit('event', { type: 'oom-sent', socket, answer });
      }
    }
  }

  /** Send one command; undefined (and one control-failed event per socket and command) on failure. */
  private async send(socket: string, command: string): Promise<string | undefined> {
    const verb = command.split(' ')[0]!;
    try {
      const answer = await sendControl(socket, command, { timeoutMs: this.opts.controlTimeoutMs ?? 1000 });
      if (answer === 'ok' || answer.startsWith('ok ')) {
        this.failed.delete(`${socket}\0${verb}`);
        return answer;
      }
      this.reportFailure(socket, command, `answered "${answer}"`);
    } catch (e) {
      this.reportFailure(socket, command, e instanceof Error ? e.message : String(e));
    }
    return undefined;
  }

  private reportFailure(socket: string, command: string, message: string): void {
    const key = `${socket}\0${command.split(' ')[0]}`;
    if (this.failed.has(key)) return;
    this.failed.add(key);
    this.emit('event', { type: 'control-failed', socket, command, message });
  }
}
