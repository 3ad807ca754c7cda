/**
 * `highwater run` / `highwater python`: start the program under the shim,
 * watch it, render its reports, and return the exit status.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { HighwaterError, isHighwaterError } from '../errors.js';
import { moduleLogger, type Logger } from '../log.js';
import { renderDumpFile, renderReport } from '../report/index.js';
import { copyOut } from '../report/safe-file.js';
import { readStateFile } from '../report/state.js';
import { claimRunDir, type RunDirClaim } from '../watcher/claim.js';
import type { ReportJson, Trigger } from '../report/model.js';
import { reportSummaryLines } from '../report/toplines.js';
import { readOomKillCount } from '../memory/oom-kills.js';
import { DumpPoller, listRunDir, type DumpFile } from '../watcher/rundir.js';
import { Watcher, type WatcherEvent } from '../watcher/watch.js';
import { targetArgv, type Target } from './args.js';
import { childEnv } from './env.js';
import { ensureWritableDir, hasDisplay, mkdirParents, openInBrowser, removeIfEmpty } from './output.js';
import type { BundlePaths } from './paths.js';
import { rawInvocation, startChild } from './raw-exec.js';

// Exit status when OOM was detected: the shim's own (docs/protocol.md "State file", exitStatus).
import { EXIT_OOM } from '../state/layout.js';

export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGQUIT'] as const;

export interface RunOptions {
  mode: 'run' | 'python';
  target: Target;
  config: Config;
  paths: BundlePaths;
  logger: Logger;
  /** Human messages (`highwater: ...` lines). */
  say: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

interface ChildOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: NodeJS.ErrnoException;
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

/** The status a shell would give: the code, or 128 + N for signal N. */
export function exitStatusOf(o: ChildOutcome): number {
  if (o.spawnError) return o.spawnError.code === 'ENOENT' ? 127 : 126;
  if (o.signal) return 128 + signalNumber(o.signal);
  return o.code ?? 1;
}

/** Largest raw file copied next to the reports when it could not be rendered. */
const MAX_KEPT_BYTES = 1024 * 1024 * 1024;

function errorCode(e: unknown): string {
  if (isHighwaterError(e)) return e.code;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'HW_ERR_INTERNAL';
}

function logWatcherEvent(log: Logger, e: WatcherEvent): void {
  switch (e.type) {
    case 'readings':
      log.trace({ readings: e.readings, floorBytes: e.floorBytes }, 'readings');
      break;
    case 'reading-failed':
      log.warn({ err: e.message }, 'cannot take memory readings');
      break;
    case 'control-failed':
      log.debug({ socket: e.socket, command: e.command, err: e.message }, 'control command failed');
      break;
    case 'oom':
      log.warn({ reason: e.reason }, `out of memory: ${e.detail}`);
      break;
    default:
      log.debug(e, e.type);
  }
}

export async function runProgram(opts: RunOptions): Promise<number> {
  const { config, paths, say, mode } = opts;
  const env = opts.env ?? process.env;
  const log = moduleLogger(opts.logger, 'run');

  if (!existsSync(paths.shim)) {
    throw new HighwaterError(
      'HW_ERR_CONFIG',
      `the preload shim is missing at ${paths.shim} (build it with \`npm run build\`, or set HIGHWATER_HOME to the highwater bundle)`,
    );
  }
  const out = ensureWritableDir(config.outputDir);
  const ownRunDir = config.runDir === undefined;
  const runDir = config.runDir ?? mkdtempSync(join(tmpdir(), 'highwater-run-'));
  // A run dir given by the user may hold what an earlier run left, or be in
  // use by another run: claim it (docs/security.md), before anything starts.
  let claim: RunDirClaim | undefined;
  if (!ownRunDir) {
    if (!existsSync(runDir)) mkdirParents(resolve(runDir));
    claim = claimRunDir(runDir);
    if (claim.removedStale.length > 0) {
      say(`removed ${claim.removedStale.length} file(s) an earlier run left in ${runDir}: ${claim.removedStale.join(', ')}`);
    }
  }
  const argv = targetArgv(opts.target, config.python);
  const cmdText = argv.join(' ');
  // The program gets its arguments and environment as bytes (see startChild).
  const raw = rawInvocation(opts.target, config.python, argv, env, paths);
  // A script that is not there: let Python say so in its own words and with
  // its own exit code, without the shim (there is nothing to profile).
  const missingScript = opts.target.kind === 'script' && !existsSync(raw ? raw.argv[1]! : opts.target.script);
  const oomKillsBefore = readOomKillCount('self');

  const childEnvironment = missingScript ? env : childEnv(env, paths, config, runDir, mode, process.execPath);
  const { child, execError } = startChild(argv, childEnvironment, raw, env);
  // Say how to get a report once a Python process is actually tracked (a
  // non-Python command gets one line at the end instead).
  const announce = setInterval(() => {
    const [first] = listRunDir(runDir).states.keys();
    if (first === undefined) return;
    clearInterval(announce);
    say(`profiling ${cmdText}; \`kill -USR2 ${first}\` writes a report of the peak so far, Ctrl-C or SIGTERM stops it with one`);
  }, 100);
  announce.unref();
  const outcome = new Promise<ChildOutcome>((resolve) => {
    child.once('exit', (code, signal) => {
      // Through highwater-init --exec-from-fd, a failed exec is reported on its status pipe.
      void execError.then((spawnError) => resolve(spawnError ? { code: null, signal: null, spawnError } : { code, signal }));
    });
    child.once('error', (e: NodeJS.ErrnoException) => resolve({ code: null, signal: null, spawnError: e }));
  });

  // Signals: forward; SIGINT from the terminal already reached the child (same process group).
  const handlers = new Map<NodeJS.Signals, () => void>();
  for (const sig of FORWARDED_SIGNALS) handlers.set(sig, () => void child.kill(sig));
  handlers.set('SIGINT', () => {
    if (!process.stdin.isTTY) child.kill('SIGINT');
  });
  for (const [sig, h] of handlers) process.on(sig, h);

  // Rendering: one at a time, in order of appearance.
  const reports: Array<{ dir: string; report: ReportJson }> = [];
  const failures: Array<{ path: string; error: unknown }> = [];
  const renderedPids = new Set<number>();
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (what: string, job: () => Promise<{ dir: string; report: ReportJson }>): void => {
    queue = queue.then(async () => {
      try {
        const r = await job();
        reports.push(r);
        say(`report written to ${join(r.dir, 'index.html')}`);
        for (const line of reportSummaryLines(r.report)) say(line);
      } catch (e) {
        failures.push({ path: what, error: e });
        say(`could not render ${what}: ${e instanceof Error ? e.message : String(e)} (${errorCode(e)})`);
      }
    });
  };
  const renderOpts = { timestampedSubdir: config.timestampedSubdir };
  const onDump = (d: DumpFile): void => {
    // Only the shim's hw-<pid>-<seq>.dump; hw-api-*.dump files are rendered by highwater.api itself.
    if (d.pid === undefined) return;
    renderedPids.add(d.pid);
    enqueue(d.path, () => renderDumpFile(d.path, config.outputDir, renderOpts));
  };
  const poller = new DumpPoller(runDir, { intervalMs: config.pollIntervalMs, onDump });

  let watcher: Watcher | undefined;
  if (child.pid !== undefined) {
    watcher = new Watcher({
      pid: child.pid,
      runDir,
      config,
      readOptions: { logger: moduleLogger(opts.logger, 'readings') },
    });
    const wlog = moduleLogger(opts.logger, 'watcher');
    watcher.on('event', (e) => logWatcherEvent(wlog, e));
    watcher.start();
    poller.start();
  }

  const result = await outcome;
  clearInterval(announce);
  for (const [sig, h] of handlers) process.off(sig, h);
  // From here on the program has ended: nothing highwater does may replace
  // its exit status with a crash of our own.
  try {
    await watcher?.stop();
    poller.stop();
    poller.scan();
  } catch (e) {
    say(`internal error while watching (${errorCode(e)}): ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return await afterExit();
  } catch (e) {
    say(`internal error after ${cmdText} ended (${errorCode(e)}): ${e instanceof Error ? e.message : String(e)}; run dir kept: ${runDir}`);
    return (watcher?.oomFired ?? false) ? EXIT_OOM : exitStatusOf(result);
  }

  async function afterExit(): Promise<number> {
    if (result.spawnError) {
      say(`cannot run ${argv[0]}: ${result.spawnError.code ?? result.spawnError.message}`);
    }

    // Post-mortem: a process that left a state file but no dump (SIGKILL, os._exit, a fatal signal).
    const listing = listRunDir(runDir);
    // Killed by the kernel's OOM killer (the cgroup's oom_kill count moved)?
    const oomKillsAfter = readOomKillCount('self');
    const oomKilled =
      result.signal !== null &&
      oomKillsBefore !== undefined &&
      oomKillsAfter !== undefined &&
      oomKillsAfter > oomKillsBefore;
    if (oomKilled && result.signal !== 'SIGKILL') {
      log.debug({ signal: result.signal }, 'died while being OOM-killed; reporting it as killed');
    }
    const trigger: Trigger =
      result.signal === 'SIGKILL' || oomKilled ? 'killed' : result.signal ? 'signal' : 'exit';
    for (const [pid, statePath] of listing.states) {
      if (renderedPids.has(pid)) continue;
      if (mode === 'python' && trigger === 'exit') continue; // tracking was off unless the API turned it on
      enqueue(statePath, async () => renderReport(await readStateFile(statePath, { trigger }), config.outputDir, renderOpts));
    }
    await queue;

    const runDirGone = !existsSync(runDir);
    if (runDirGone && !result.spawnError && !missingScript) {
      say(`the run dir ${runDir} was removed while ${cmdText} ran: its state and dumps went with it, no report could be made`);
    } else if (listing.states.size === 0 && renderedPids.size === 0 && !result.spawnError && mode === 'run' && !missingScript) {
      say(`${cmdText} did not run Python under the shim; nothing was profiled`);
    }

    const oom = (watcher?.oomFired ?? false) || reports.some((r) => r.report.trigger === 'oom');
    const last = reports.at(-1);
    if (last && config.openBrowser && hasDisplay(env)) openInBrowser(join(last.dir, 'index.html'));

    // Raw data of what could not be rendered goes next to the reports, so
    // that the run dir can be cleaned; if even that fails, the run dir stays.
    let keepRunDir = false;
    for (const f of failures) {
      try {
        say(`raw data kept at ${await copyOut(f.path, config.outputDir, MAX_KEPT_BYTES)}`);
      } catch {
        keepRunDir = true;
      }
    }
    if (reports.length === 0 && failures.length === 0 && out.created) removeIfEmpty(config.outputDir);
    if (keepRunDir) {
      say(`run dir kept with the raw data: ${runDir}`);
      claim?.release({ removeLeftovers: false });
    } else if (ownRunDir) {
      rmSync(runDir, { recursive: true, force: true });
    } else {
      claim?.release({ removeLeftovers: true });
    }
    log.debug({ outcome: { code: result.code, signal: result.signal }, oom, reports: reports.length }, 'finished');
    if (oom) return EXIT_OOM;
    if (oomKilled) {
      say(`the kernel's OOM killer ended ${cmdText} (exit 137)`);
      return 128 + 9;
    }
    return exitStatusOf(result);
  }
}
