/**
 * Imported first by main.ts, before the rest of the CLI loads. For `watch`,
 * a SIGTERM/SIGINT that arrives while Node is still loading the CLI is
 * remembered instead of killing the process: highwater-init stops the watcher
 * as soon as the job ends, and a job can end before the watcher is ready
 * (docs/docker.md, the init ↔ watcher contract). watch.ts replays them.
 */
const pending: NodeJS.Signals[] = [];
const remember = (sig: NodeJS.Signals): void => void pending.push(sig);
const active = process.argv[2] === 'watch';

if (active) {
  process.on('SIGTERM', remember);
  process.on('SIGINT', remember);
}

/** The signals received so far; from now on the caller's own handlers take over. */
export function takeEarlySignals(): NodeJS.Signals[] {
  if (active) {
    process.off('SIGTERM', remember);
    process.off('SIGINT', remember);
  }
  return pending.splice(0);
}
