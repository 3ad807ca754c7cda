/**
 * Entry point (bin/highwater.js imports dist/cli/main.js). The only place
 * that writes to the console, maps errors to exit statuses and exits.
 */
import './early-signals.js'; // first: `watch` must survive a SIGTERM while the rest loads
import { loadConfig } from '../config/config.js';
import { isHighwaterError } from '../errors.js';
import { exitStatusForError } from './exit.js';
import { compactHeap } from './heap.js';
import { parseArgs } from './args.js';
import { MAIN_HELP, version } from './help.js';
import { bundlePaths, findHome } from './paths.js';
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';

// Each command's modules (pino, prom-client, dockerode, the renderer) are
// imported when that command runs: less to load before anything can run,
// which keeps the window short in which `watch` cannot yet catch a SIGTERM.
const logger = async (config: { logLevel: import('../config/config.js').LogLevel; logFormat: import('../config/config.js').LogFormat }) =>
  (await import('../log.js')).createRootLogger({ level: config.logLevel, format: config.logFormat });

const PREFIX = 'highwater: ';
const say = (line: string): void => void process.stderr.write(PREFIX + line + '\n');

export async function main(argv: string[]): Promise<number> {
  const command = parseArgs(argv);
  const home = findHome();
  switch (command.cmd) {
    case 'help':
      process.stdout.write(MAIN_HELP);
      return 0;
    case 'version':
      process.stdout.write(`highwater ${version(home)}\n`);
      return 0;
    case 'render': {
      const config = loadConfig(command.flags);
      const { renderDumpFile } = await import('../report/index.js');
      const opts = { timestampedSubdir: config.timestampedSubdir };
      // --children: highwater.api.profile()'s children's dumps join its report (report/api-children.ts).
      let dir: string;
      if (command.children) {
        const rendered = await (
          await import('../report/api-children.js')
        ).renderWithChildren(command.dump, command.children, config.outputDir, opts, command.childStates);
        dir = rendered.dir;
        // --child-states: the ended children's state files are the call's to remove once in its report.
        for (const path of rendered.takenStates) {
          try {
            unlinkSync(path);
          } catch {
            // gone already: nothing to remove
          }
        }
      } else {
        ({ dir } = await renderDumpFile(command.dump, config.outputDir, opts));
      }
      say(`report written to ${join(dir, 'index.html')}`);
      return 0;
    }
    case 'kernel-install': {
      const config = loadConfig({});
      const { installKernel, KERNEL_DISPLAY_NAME } = await import('./kernel.js');
      const dir = installKernel({
        location: command.location,
        python: command.python ?? config.python,
        paths: bundlePaths(home),
        node: process.execPath,
        env: process.env,
        say,
      });
      say(`kernel "${KERNEL_DISPLAY_NAME}" installed in ${dir}`);
      return 0;
    }
    case 'watch': {
      compactHeap();
      const config = loadConfig(command.flags);
      const [{ loadWatchConfig }, { watchCommand }] = await Promise.all([import('../config/watch.js'), import('./watch.js')]);
      const watch = loadWatchConfig(command.flags.runDir, command.watch);
      return watchCommand({ config, watch, logger: await logger(config), say, version: version(home) });
    }
    case 'collect': {
      const config = loadConfig({});
      const { collectCommand } = await import('./collect.js');
      return collectCommand({ follow: command.follow, output: command.output, logger: await logger(config) });
    }
    case 'collect-kubernetes': {
      const config = loadConfig({});
      const { collectKubernetesCommand } = await import('./collect.js');
      return collectKubernetesCommand({ ...command, logger: await logger(config) });
    }
    case 'diff': {
      const { diffCommand, parseDiffArgs } = await import('./diff.js');
      const args = parseDiffArgs(command.argv);
      if (args === 'help') {
        process.stdout.write(MAIN_HELP);
        return 0;
      }
      const { status, lines } = await diffCommand(args);
      process.stdout.write(lines.map((l) => `${l}\n`).join(''));
      return status;
    }
    case 'run': {
      const config = loadConfig(command.flags);
      const { runProgram } = await import('./run.js');
      return runProgram({ mode: command.mode, target: command.target, config, paths: bundlePaths(home), logger: await logger(config), say });
    }
  }
}

main(process.argv.slice(2)).then(
  (status) => process.exit(status),
  (e: unknown) => {
    if (isHighwaterError(e)) {
      // The code too: what a user searches docs/errors.md and logs for.
      say(`${e.message} (${e.code})`);
      if (e.code === 'HW_ERR_USAGE') process.stderr.write('Try `highwater --help`.\n');
      process.exit(exitStatusForError(e.code));
    }
    say(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
