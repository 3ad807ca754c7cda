/**
 * Short names for the processes of a container-wide report (pure): what a
 * person recognises in a flamegraph root or a log line. `python train.py`
 * for the program itself; `worker 3 (multiprocessing spawn)` for a pool
 * worker, whose real argv (`python -c "from multiprocessing.spawn import
 * spawn_main; ..." --multiprocessing-fork`) says nothing useful.
 */
import { basename } from './format.js';

/** How a process came to be, as far as its argv and its parent tell. */
export type ProcessRole =
  | { kind: 'program' }
  | { kind: 'worker'; how: 'multiprocessing spawn' | 'multiprocessing forkserver' | 'fork' }
  | { kind: 'forkserver' }
  | { kind: 'resource-tracker' };

const MP_CODE = /^from multiprocessing\.(spawn|forkserver|resource_tracker|semaphore_tracker) import /;

/** The multiprocessing helper a `python -c ...` argv runs, if any. */
function multiprocessingRole(argv: readonly string[]): ProcessRole | undefined {
  const c = argv.indexOf('-c');
  const m = c >= 0 ? MP_CODE.exec(argv[c + 1] ?? '') : null;
  if (!m) return undefined;
  switch (m[1]) {
    case 'spawn':
      return { kind: 'worker', how: 'multiprocessing spawn' };
    case 'forkserver':
      return { kind: 'forkserver' };
    default:
      return { kind: 'resource-tracker' };
  }
}

/**
 * The role of a process from its argv and, when known, its parent's: a child
 * with its parent's argv was forked (a fork pool worker, a pre-fork server's
 * worker); a child of the forkserver is a forkserver pool worker.
 */
export function processRole(argv: readonly string[], parentArgv?: readonly string[]): ProcessRole {
  const own = multiprocessingRole(argv);
  if (parentArgv) {
    const parent = multiprocessingRole(parentArgv);
    if (parent?.kind === 'forkserver' && own?.kind === 'forkserver') return { kind: 'worker', how: 'multiprocessing forkserver' };
    if (!own && sameArgv(argv, parentArgv)) return { kind: 'worker', how: 'fork' };
  }
  return own ?? { kind: 'program' };
}

function sameArgv(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const MAX_LABEL = 48;

/** `python train.py --epochs 3`: the interpreter's basename and the arguments, cut to fit a flamegraph root. */
export function shortArgv(argv: readonly string[]): string {
  if (argv.length === 0) return '';
  // Paths shortened to their last component: `python /srv/app/train.py` → `python train.py`.
  const text = [basename(argv[0]!), ...argv.slice(1).map((a) => (a.includes('/') && !a.includes(' ') ? basename(a) : a))].join(' ');
  const clean = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  return clean.length > MAX_LABEL ? `${clean.slice(0, MAX_LABEL - 1)}\u2026` : clean;
}

/** The label: `python train.py`, `worker 3 (multiprocessing spawn)`; `n` numbers workers in order of appearance. */
export function processLabel(argv: readonly string[], role: ProcessRole, n?: number): string {
  switch (role.kind) {
    case 'worker':
      return `worker${n !== undefined ? ` ${n}` : ''} (${role.how})`;
    case 'forkserver':
      return 'forkserver (multiprocessing)';
    case 'resource-tracker':
      return 'resource tracker (multiprocessing)';
    case 'program':
      return shortArgv(argv) || 'python';
  }
}

/** The text of a process's root frame: `pid 41: worker 3 (multiprocessing spawn)`. */
export function processFrameName(pid: number, label: string): string {
  return `pid ${pid}: ${label}`;
}
