/**
 * What to tell of a CPython that ran under the shim without highwater's
 * bootstrap ever starting in it (the watcher's `not-started` event): it was
 * neither profiled nor guarded, and the usual causes, which the user can fix.
 */
import { shellText } from './args.js';

export const NOT_STARTED_CODE = 'HW_ERR_NOT_STARTED';

export function notStartedLine(pid: number, argv: string[]): string {
  // As a shell would take it, as run's other lines show it (args.ts).
  const cmd = argv.length ? shellText(argv) : `pid ${pid}`;
  return (
    `${cmd} (pid ${pid}) ran Python, but highwater's bootstrap never started in it: ` +
    `it was not profiled and its memory was not guarded (${NOT_STARTED_CODE}). ` +
    'python -I, -E or -S, or a PYTHONPATH set over the one highwater gave it, keep `site` from loading the bootstrap'
  );
}
