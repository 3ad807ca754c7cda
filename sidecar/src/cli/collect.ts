/**
 * `highwater collect docker [--follow] [--output DIR]`: copies the reports of
 * containers started with highwater out of the engine (docker/collect.ts) and
 * prints the table on stdout. SIGINT/SIGTERM end `--follow` cleanly.
 */
import { collectDocker } from '../docker/collect.js';
import { moduleLogger, type Logger } from '../log.js';

export interface CollectCommandOptions {
  follow: boolean;
  output: string | undefined;
  logger: Logger;
  /** One table line. @default stdout */
  print?: (line: string) => void;
}

export async function collectCommand(opts: CollectCommandOptions): Promise<number> {
  const print = opts.print ?? ((line: string) => void process.stdout.write(line + '\n'));
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await collectDocker(
      { follow: opts.follow, output: opts.output, signal: abort.signal, print },
      moduleLogger(opts.logger, 'collect'),
    );
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}
