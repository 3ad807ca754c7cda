/**
 * `highwater collect docker [--follow] [--output DIR]`: copies the reports of
 * containers started with highwater out of the engine (docker/collect.ts) and
 * prints the table on stdout. SIGINT/SIGTERM end `--follow` cleanly.
 */
import { collectDocker } from '../docker/collect.js';
import { HighwaterError } from '../errors.js';
import { moduleLogger, type Logger } from '../log.js';

export interface CollectCommandOptions {
  follow: boolean;
  output: string | undefined;
  logger: Logger;
  /** One table line. @default stdout */
  print?: (line: string) => void;
}

export async function collectCommand(opts: CollectCommandOptions): Promise<number> {
  const print = opts.print ?? printLine;
  await withStopSignal(async (signal) => {
    try {
      await collectDocker({ follow: opts.follow, output: opts.output, signal, print }, moduleLogger(opts.logger, 'collect'));
    } catch (e) {
      if (!signal.aborted) throw e;
    }
  });
  return 0;
}

/** One table line on stdout. */
function printLine(line: string): void {
  process.stdout.write(line + '\n');
}

/** Runs `work` with a signal that SIGINT/SIGTERM abort (how `--follow` ends); the handlers are removed afterwards. */
async function withStopSignal(work: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await work(abort.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export interface CollectKubernetesCommandOptions {
  follow: boolean;
  /** undefined with allNamespaces false = the kubeconfig context's namespace. */
  namespace: string | undefined;
  allNamespaces: boolean;
  /** `30m`, `2h`, `1d`. */
  since: string | undefined;
  logger: Logger;
  print?: (line: string) => void;
  /** Tests: the environment for the Kubernetes config. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * `highwater collect kubernetes [-n NS | -A] [--since D] [--follow]`: the
 * HighwaterOOM Events as a table on stdout (kubernetes/collect.ts).
 * Raises HW_ERR_USAGE for a bad --since and HW_ERR_K8S_* without API access.
 */
export async function collectKubernetesCommand(opts: CollectKubernetesCommandOptions): Promise<number> {
  const { collectKubernetes, parseDuration } = await import('../kubernetes/collect.js');
  const { EventsClient, loadKubeConfig, contextNamespace } = await import('../kubernetes/client.js');
  let sinceMs: number | undefined;
  if (opts.since !== undefined) {
    const d = parseDuration(opts.since);
    if (d === undefined)
      throw new HighwaterError(
        'HW_ERR_USAGE',
        `highwater collect kubernetes: --since ${JSON.stringify(opts.since)}: expected a duration such as 90s, 30m, 2h, 1d`,
      );
    sinceMs = Date.now() - d;
  }
  const kc = loadKubeConfig(opts.env ?? process.env);
  const namespace = opts.allNamespaces ? undefined : (opts.namespace ?? contextNamespace(kc));
  const print = opts.print ?? printLine;
  await withStopSignal((signal) =>
    collectKubernetes(new EventsClient(kc), { namespace, sinceMs, follow: opts.follow, signal, print }, moduleLogger(opts.logger, 'collect')),
  );
  return 0;
}
