/**
 * The one post-mortem rule (docs/protocol.md "Post-mortem reports"), pure: a
 * tracked process ended without a dump of its own; does its state file get a
 * report, and with which trigger? `highwater run` knows how its own child
 * ended (the wait status); `highwater watch` only sees processes vanish.
 */
import type { Trigger } from '../report/model.js';

/** How a process ended, when the watcher's owner reaped it (`highwater run`'s child). */
export interface EndStatus {
  /** Exit code; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The cgroup's `oom_kill` count moved while it ran: the kernel's OOM killer ended it. */
  oomKilled?: boolean;
}

/** The state header fields the rule reads. */
export interface PostMortemFacts {
  /** 0 while running; 0x100 + code when the shim itself ended the process. */
  exitStatus: number;
  tracking: boolean;
  peakBytes: number;
}

/** The header's exitStatus when the shim ended the process with exit code 53 (EXIT_OOM). */
const SHIM_EXITED_OOM = 0x100 + 53;

/**
 * The trigger of the post-mortem report, or undefined when none is due:
 * 1. the shim itself exited 53 (its OOM dump could not be written): `oom`;
 * 2. tracking was off at the end and there is nothing to tell (peak 0), or
 *    the process ended by itself (an exit code) with tracking off (`highwater
 *    python` without the API, or after the API's own dump): no report;
 * 3. the end is unknown (a process we did not start: we only see it vanish,
 *    and nobody vanishes without a dump but by a signal the shim cannot
 *    catch): `killed`;
 * 4. SIGKILL, or killed by the kernel's OOM killer: `killed`; another
 *    signal: `signal`; an exit code (os._exit, a crash of the exit dump): `exit`.
 */
export function postMortemTrigger(h: PostMortemFacts, ended: EndStatus | undefined): Trigger | undefined {
  if (h.exitStatus === SHIM_EXITED_OOM) return 'oom';
  const endedByItself = ended !== undefined && ended.signal === null && !ended.oomKilled;
  if (!h.tracking && (h.peakBytes === 0 || endedByItself)) return undefined;
  if (ended === undefined) return 'killed';
  if (ended.signal === 'SIGKILL' || ended.oomKilled) return 'killed';
  return ended.signal ? 'signal' : 'exit';
}
