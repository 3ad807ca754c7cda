/**
 * `highwater run` / `highwater python`: start the program under the shim,
 * watch its run dir with the same watcher as `highwater watch`
 * (watcher/rundir-watcher.ts), say what it rendered, and map the exit status.
 */
import { NOT_STARTED_CODE, notStartedLine } from './not-started.js';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config } from '../config/config.js';
import { HighwaterError, isHighwaterError } from '../errors.js';
import { moduleLogger, type Logger } from '../log.js';
import { claimRunDir, type RunDirClaim } from '../watcher/claim.js';
import type { ReportJson } from '../report/model.js';
import { oomHeadline } from '../report/oom-headline.js';
import { reportSummaryLines } from '../report/toplines.js';
import { readOomKillCount } from '../memory/oom-kills.js';
import { RunDirWatcher, type RunDirEvent } from '../watcher/rundir-watcher.js';
import { shellText, targetArgv, type Target } from './args.js';
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

function errorCode(e: unknown): string {
  if (isHighwaterError(e)) return e.code;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'HW_ERR_INTERNAL';
}

/** The watcher's events that `run` only logs (the others it says or counts). */
function logWatcherEvent(log: Logger, e: RunDirEvent): void {
  switch (e.type) {
    case 'reading-failed':
      log.warn({ pid: e.pid, err: e.message }, 'cannot take memory readings');
      break;
    case 'control-failed':
      log.debug({ pid: e.pid, command: e.command, err: e.message }, 'control command failed');
      break;
    case 'oom':
      log.warn({ pid: e.pid, reason: e.reason }, `out of memory: ${e.detail}`);
      break;
    case 'file-skipped':
      log.warn({ path: e.path }, `skipped ${e.path}: ${e.reason}`);
      break;
    case 'report':
    case 'report-failed':
      break;
    case 'not-started':
      log.debug({ pid: e.pid, code: NOT_STARTED_CODE }, 'bootstrap never started'); // said in full by runProgram
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
  const cmdText = shellText(argv);
  // The program gets its arguments and environment as bytes (see startChild).
  const raw = rawInvocation(opts.target, config.python, argv, env, paths);
  // A script that is not there: let Python say so in its own words and with
  // its own exit code, without the shim (there is nothing to profile).
  const missingScript = opts.target.kind === 'script' && !existsSync(raw ? raw.argv[1]! : opts.target.script);
  const oomKillsBefore = readOomKillCount('self');

  const childEnvironment = missingScript ? env : childEnv(env, paths, config, runDir, mode, process.execPath);
  const { child, execError } = startChild(argv, childEnvironment, raw, env);
  let childRunning = true;
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

  // The run dir's watcher: dumps rendered as they appear (one at a time, in
  // order), the heuristics, post-mortems by its one rule (post-mortem.ts).
  const reports: Array<{ dir: string; report: ReportJson }> = [];
  const failures: Array<{ from: string; kept: string }> = [];
  /** A Python process ran under the shim: a state file or one of its dumps was seen. */
  let tracked = false;
  const watcher = new RunDirWatcher({
    runDir,
    outputDir: config.outputDir,
    config,
    ownsRunDir: true,
    // `highwater python`: highwater.api writes the reports, its children's included.
    ...(mode === 'python' ? { containerWide: false, apiMode: true } : {}),
    expectProcessWithinMs: 0, // a command that runs no Python gets one line at the end instead
    readOptions: { logger: moduleLogger(opts.logger, 'readings') },
    renderOptions: { timestampedSubdir: config.timestampedSubdir },
  });
  const wlog = moduleLogger(opts.logger, 'watcher');
  watcher.on('event', (e) => {
    logWatcherEvent(wlog, e);
    switch (e.type) {
      case 'process-found':
        // Say how to get a report once a Python process is actually tracked.
        if (!tracked && childRunning) {
          say(`profiling ${cmdText}; \`kill -USR2 ${e.pid}\` writes a report of the peak so far, Ctrl-C or SIGTERM stops it with one`);
        }
        tracked = true;
        break;
      case 'report':
        if (e.pid !== undefined) tracked = true;
        reports.push(e);
        // Container-wide OOM: the process holding the most and its line first (docs/report.md "Several processes").
        for (const line of oomHeadline(e.report)) say(line);
        say(`report written to ${join(e.dir, 'index.html')}`);
        for (const line of reportSummaryLines(e.report)) say(line);
        break;
      case 'not-started':
        say(notStartedLine(e.pid, e.argv));
        break;
      case 'report-failed':
        if (e.pid !== undefined) tracked = true;
        failures.push(e);
        say(`could not render ${e.from}: ${e.message} (${e.code})`);
        break;
    }
  });
  if (child.pid !== undefined) {
    watcher.watchChild(child.pid);
    watcher.start();
  }

  const result = await outcome;
  childRunning = false;
  for (const [sig, h] of handlers) process.off(sig, h);
  // Killed by the kernel's OOM killer (the cgroup's oom_kill count moved)?
  const oomKillsAfter = readOomKillCount('self');
  const oomKilled = result.signal !== null && oomKillsBefore !== undefined && oomKillsAfter !== undefined && oomKillsAfter > oomKillsBefore;
  if (oomKilled && result.signal !== 'SIGKILL') {
    log.debug({ signal: result.signal }, 'died while being OOM-killed; reporting it as killed');
  }
  // Several processes: the kernel's OOM killer may have ended a worker while
  // the program itself exited (1, from BrokenProcessPool): the container-wide
  // report is a post-mortem of every process all the same.
  const cgroupOomKill = oomKillsBefore !== undefined && oomKillsAfter !== undefined && oomKillsAfter > oomKillsBefore;
  if (cgroupOomKill || result.signal === 'SIGKILL') watcher.containerTrigger = 'killed';
  // From here on the program has ended: nothing highwater does may replace
  // its exit status with a crash of our own.
  try {
    if (child.pid !== undefined) {
      watcher.childEnded(child.pid, { code: result.code, signal: result.signal, oomKilled });
      // The last pass: dumps left, post-mortems of processes without one, a
      // dump of any process of the program still running.
      await watcher.stop();
    }
  } catch (e) {
    say(`internal error while watching (${errorCode(e)}): ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    return await afterExit();
  } catch (e) {
    say(`internal error after ${cmdText} ended (${errorCode(e)}): ${e instanceof Error ? e.message : String(e)}; run dir kept: ${runDir}`);
    return watcher.oomFired || watcher.container.oomPid !== 0 ? EXIT_OOM : exitStatusOf(result);
  }

  async function afterExit(): Promise<number> {
    if (result.spawnError) {
      say(`cannot run ${argv[0]}: ${result.spawnError.code ?? result.spawnError.message}`);
    }

    const runDirGone = !existsSync(runDir);
    if (runDirGone && !result.spawnError && !missingScript) {
      say(`the run dir ${runDir} was removed while ${cmdText} ran: its state and dumps went with it, no report could be made`);
    } else if (!tracked && !result.spawnError && mode === 'run' && !missingScript) {
      say(`${cmdText} did not run Python under the shim; nothing was profiled`);
    }

    // The container file's OOM flag: a worker tripped, whatever the program's own status (docs/protocol.md "OOM across processes").
    const oom = watcher.oomFired || reports.some((r) => r.report.trigger === 'oom') || watcher.container.oomPid !== 0;
    const containerKilled = cgroupOomKill && reports.some((r) => r.report.container !== undefined && r.report.trigger === 'killed');
    const last = reports.at(-1);
    if (last && config.openBrowser && hasDisplay(env)) openInBrowser(join(last.dir, 'index.html'));

    // The watcher copied the raw data of what could not be rendered next to
    // the reports, so that the run dir can be cleaned; where even that
    // failed (the copy is the original), the run dir stays.
    let keepRunDir = false;
    for (const f of failures) {
      if (f.kept === f.from) keepRunDir = true;
      else say(`raw data kept at ${f.kept}`);
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
    if (oomKilled || containerKilled) {
      say(`the kernel's OOM killer ended ${cmdText} (exit 137)`);
      return 128 + 9;
    }
    return exitStatusOf(result);
  }
}
