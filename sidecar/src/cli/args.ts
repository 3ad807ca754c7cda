/**
 * Pure command-line parser. Options come before the program; everything
 * after the script name, the module name or `--` belongs to the program.
 */
import type { ConfigFlags } from '../config/config.js';
import type { WatchFlags } from '../config/watch.js';
import { HighwaterError } from '../errors.js';
import type { KernelLocation } from './kernel.js';

export type Target =
  { kind: 'script'; script: string; args: string[] } | { kind: 'module'; module: string; args: string[] } | { kind: 'command'; argv: string[] };

export type Command =
  | { cmd: 'help'; topic: 'main' | 'run' | 'python' | 'render' | 'watch' | 'collect' | 'kernel' }
  | { cmd: 'version' }
  | { cmd: 'run'; mode: 'run' | 'python'; flags: ConfigFlags; target: Target }
  | { cmd: 'render'; dump: string; flags: ConfigFlags; children?: string; childStates?: { runDir: string; sinceMs: number } }
  | { cmd: 'watch'; flags: ConfigFlags; watch: WatchFlags }
  | { cmd: 'collect'; source: 'docker'; follow: boolean; output: string | undefined }
  | { cmd: 'collect-kubernetes'; follow: boolean; namespace: string | undefined; allNamespaces: boolean; since: string | undefined }
  | { cmd: 'kernel-install'; location: KernelLocation; python?: string }
  | { cmd: 'diff'; argv: string[] }; // parsed by cli/diff.ts

/** Flags of `highwater watch` beyond the shared ConfigFlags (config/watch.ts). */
export type { WatchFlags };

function usage(message: string): HighwaterError {
  return new HighwaterError('HW_ERR_USAGE', message);
}

/** `--name=value` or `--name value` / `-o value`; returns [value, next index]. */
function takeValue(argv: string[], i: number, name: string): [string, number] {
  const a = argv[i]!;
  const eq = a.indexOf('=');
  if (a.startsWith('--') && eq > 0) return [a.slice(eq + 1), i + 1];
  if (a.startsWith('-o') && a.length > 2 && !a.startsWith('--')) return [a.slice(2), i + 1];
  if (i + 1 >= argv.length) throw usage(`option ${name} needs a value`);
  return [argv[i + 1]!, i + 2];
}

function flagName(a: string): string {
  const eq = a.indexOf('=');
  return a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
}

/**
 * An option `command` does not take. A switch given a value
 * (`--once=yes`) is a known option used wrongly: said as such, so that the
 * user does not go looking for an option that exists.
 */
function unknownOption(a: string, command: string, switches: readonly string[]): HighwaterError {
  const name = flagName(a);
  if (name !== a && switches.includes(name)) return usage(`option ${name} of ${command} takes no value (got ${a})`);
  return usage(`unknown option ${name} for ${command}`);
}

const RUN_SWITCHES = ['--no-browser', '--disable-oom-detection', '--limit-threads', '--no-limit-threads', '--no-children'];

function parseRun(argv: string[], mode: 'run' | 'python'): Command {
  const flags: ConfigFlags = {};
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const name = flagName(a);
    if (a === '--') {
      const rest = argv.slice(i + 1);
      if (rest.length === 0) throw usage(`highwater ${mode} --: no command given`);
      return { cmd: 'run', mode, flags, target: { kind: 'command', argv: rest } };
    }
    if (a === '-m') {
      const mod = argv[i + 1];
      if (mod === undefined || mod === '') throw usage(`highwater ${mode} -m: no module given`);
      return { cmd: 'run', mode, flags, target: { kind: 'module', module: mod, args: argv.slice(i + 2) } };
    }
    if (a === '-h' || a === '--help') return { cmd: 'help', topic: mode };
    if (name === '-o' || name === '--output' || (a.startsWith('-o') && !a.startsWith('--'))) {
      [flags.outputDir, i] = takeValue(argv, i, '-o');
      continue;
    }
    if (name === '--min-available') {
      [flags.minAvailable, i] = takeValue(argv, i, '--min-available');
      continue;
    }
    if (name === '--run-dir') {
      [flags.runDir, i] = takeValue(argv, i, '--run-dir');
      continue;
    }
    if (name === '--sample-rate') {
      [flags.sampleRate, i] = takeValue(argv, i, '--sample-rate');
      continue;
    }
    if (a === '--no-browser') flags.openBrowser = false;
    else if (a === '--disable-oom-detection') flags.oomDetection = false;
    else if (a === '--limit-threads') flags.limitThreads = true;
    else if (a === '--no-limit-threads') flags.limitThreads = false;
    else if (a === '--no-children') flags.children = false;
    else if (a.startsWith('-') && a !== '-') throw unknownOption(a, `highwater ${mode}`, RUN_SWITCHES);
    else return { cmd: 'run', mode, flags, target: { kind: 'script', script: a, args: argv.slice(i + 1) } };
    i++;
  }
  throw usage(`highwater ${mode}: no program given (script.py, -m module, or -- command)`);
}

function parseRender(argv: string[]): Command {
  const flags: ConfigFlags = {};
  let dump: string | undefined;
  let children: string | undefined;
  let statesDir: string | undefined;
  let since: string | undefined;
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const name = flagName(a);
    if (a === '-h' || a === '--help') return { cmd: 'help', topic: 'render' };
    if (name === '--children') {
      [children, i] = takeValue(argv, i, '--children');
      continue;
    }
    if (name === '--child-states') {
      [statesDir, i] = takeValue(argv, i, '--child-states');
      continue;
    }
    if (name === '--since') {
      [since, i] = takeValue(argv, i, '--since');
      continue;
    }
    if (name === '-o' || name === '--output' || (a.startsWith('-o') && !a.startsWith('--'))) {
      [flags.outputDir, i] = takeValue(argv, i, '-o');
      continue;
    }
    if (a === '--no-timestamp') flags.timestampedSubdir = false;
    else if (a === '--') {
      if (dump !== undefined || i + 1 >= argv.length) throw usage('highwater render takes exactly one DUMP');
      dump = argv[i + 1];
      i += 2;
      continue;
    } else if (a.startsWith('-') && a !== '-') throw unknownOption(a, 'highwater render', ['--no-timestamp']);
    else if (dump !== undefined) throw usage(`highwater render takes exactly one DUMP (got ${dump} and ${a})`);
    else dump = a;
    i++;
  }
  if (dump === undefined) throw usage('highwater render: no DUMP given');
  if (flags.outputDir === undefined) throw usage('highwater render: -o DIR is required');
  if ((statesDir === undefined) !== (since === undefined)) throw usage('highwater render: --child-states DIR and --since MS go together');
  if (since !== undefined && !/^\d{1,15}$/.test(since)) throw usage(`highwater render: --since takes wall-clock milliseconds (got ${since})`);
  if (statesDir !== undefined && children === undefined) throw usage('highwater render: --child-states needs --children DIR');
  const childStates = statesDir !== undefined ? { runDir: statesDir, sinceMs: Number(since) } : undefined;
  return { cmd: 'render', dump, flags, ...(children !== undefined ? { children } : {}), ...(childStates ? { childStates } : {}) };
}

/** `highwater kernel install [--user|--prefix DIR] [--python EXE]` */
function parseKernel(argv: string[]): Command {
  const [action, ...rest] = argv;
  if (action === '-h' || action === '--help' || action === undefined) return { cmd: 'help', topic: 'kernel' };
  if (action !== 'install') throw usage(`unknown kernel action ${action} (highwater kernel install)`);
  let location: KernelLocation | undefined;
  let python: string | undefined;
  let i = 0;
  while (i < rest.length) {
    const a = rest[i]!;
    const name = flagName(a);
    if (a === '-h' || a === '--help') return { cmd: 'help', topic: 'kernel' };
    if (a === '--user' || name === '--prefix') {
      if (location !== undefined) throw usage('highwater kernel install: give one of --user and --prefix DIR');
      if (a === '--user') {
        location = { kind: 'user' };
        i++;
      } else {
        let dir: string;
        [dir, i] = takeValue(rest, i, '--prefix');
        location = { kind: 'prefix', dir };
      }
      continue;
    }
    if (name === '--python') {
      [python, i] = takeValue(rest, i, '--python');
      continue;
    }
    throw unknownOption(a, 'highwater kernel install', ['--user']);
  }
  return { cmd: 'kernel-install', location: location ?? { kind: 'user' }, ...(python === undefined ? {} : { python }) };
}

/** `highwater watch --run-dir DIR --output DIR [--metrics-port N] [--disable-oom-detection] [--min-available SIZE] [--warn-after S] [--once]` */
function parseWatch(argv: string[]): Command {
  const flags: ConfigFlags = {};
  const watch: WatchFlags = {};
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const name = flagName(a);
    if (a === '-h' || a === '--help') return { cmd: 'help', topic: 'watch' };
    if (name === '-o' || name === '--output' || (a.startsWith('-o') && !a.startsWith('--'))) [flags.outputDir, i] = takeValue(argv, i, '-o');
    else if (name === '--run-dir') [flags.runDir, i] = takeValue(argv, i, '--run-dir');
    else if (name === '--min-available') [flags.minAvailable, i] = takeValue(argv, i, '--min-available');
    else if (name === '--metrics-port') [watch.metricsPort, i] = takeValue(argv, i, '--metrics-port');
    else if (name === '--warn-after') [watch.warnAfter, i] = takeValue(argv, i, '--warn-after');
    else if (name === '--upload-url') [watch.uploadUrl, i] = takeValue(argv, i, '--upload-url');
    else if (name === '--upload-timeout') [watch.uploadTimeout, i] = takeValue(argv, i, '--upload-timeout');
    else if (a === '--events') [watch.events, i] = [true, i + 1];
    else if (a === '--disable-oom-detection') [flags.oomDetection, i] = [false, i + 1];
    else if (a === '--once') [watch.once, i] = [true, i + 1];
    else if (a.startsWith('-')) throw unknownOption(a, 'highwater watch', ['--events', '--disable-oom-detection', '--once']);
    else throw usage(`highwater watch takes no arguments (got ${a})`);
  }
  return { cmd: 'watch', flags, watch };
}

/** `highwater collect docker [--follow] [--output DIR]` */
function parseCollect(argv: string[]): Command {
  const [source, ...rest] = argv;
  if (source === undefined || source === '-h' || source === '--help') return { cmd: 'help', topic: 'collect' };
  if (source === 'kubernetes') return parseCollectKubernetes(rest);
  if (source !== 'docker') throw usage(`unknown collect source ${source} (highwater collect docker|kubernetes)`);
  let follow = false;
  let output: string | undefined;
  let i = 0;
  while (i < rest.length) {
    const a = rest[i]!;
    const name = flagName(a);
    if (a === '-h' || a === '--help') return { cmd: 'help', topic: 'collect' };
    if (name === '-o' || name === '--output' || (a.startsWith('-o') && !a.startsWith('--'))) [output, i] = takeValue(rest, i, '-o');
    else if (a === '--follow' || a === '-f') [follow, i] = [true, i + 1];
    else throw unknownOption(a, 'highwater collect docker', ['--follow']);
  }
  if (output === '') throw usage('highwater collect docker: --output needs a non-empty value');
  return { cmd: 'collect', source: 'docker', follow, output };
}

/** `highwater collect kubernetes [-n NS | -A] [--since DURATION] [--follow]` */
function parseCollectKubernetes(argv: string[]): Command {
  let namespace: string | undefined;
  let allNamespaces = false;
  let since: string | undefined;
  let follow = false;
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const name = flagName(a);
    if (a === '-h' || a === '--help') return { cmd: 'help', topic: 'collect' };
    if (name === '-n' || name === '--namespace') [namespace, i] = takeValue(argv, i, '-n');
    else if (name === '--since') [since, i] = takeValue(argv, i, '--since');
    else if (a === '-A' || a === '--all-namespaces') [allNamespaces, i] = [true, i + 1];
    else if (a === '--follow' || a === '-f') [follow, i] = [true, i + 1];
    else throw unknownOption(a, 'highwater collect kubernetes', ['--all-namespaces', '--follow']);
  }
  if (namespace !== undefined && allNamespaces) throw usage('highwater collect kubernetes: give -n NAMESPACE or --all-namespaces, not both');
  if (namespace === '') throw usage('highwater collect kubernetes: -n needs a non-empty value');
  return { cmd: 'collect-kubernetes', follow, namespace, allNamespaces, since };
}

/** Parse `process.argv.slice(2)`. Raises `HW_ERR_USAGE`. */
export function parseArgs(argv: string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined) throw usage('no command given');
  if (first === '--version' || first === '-V') return { cmd: 'version' };
  if (first === '--help' || first === '-h' || first === 'help') return { cmd: 'help', topic: 'main' };
  if (first === 'run') return parseRun(rest, 'run');
  if (first === 'python') return parseRun(rest, 'python');
  if (first === 'render') return parseRender(rest);
  if (first === 'watch') return parseWatch(rest);
  if (first === 'collect') return parseCollect(rest);
  if (first === 'kernel') return parseKernel(rest);
  if (first === 'diff') return { cmd: 'diff', argv: rest };
  if (first.startsWith('-')) throw usage(`unknown option ${flagName(first)}`);
  throw usage(`unknown command ${first}`);
}

/** The argv to spawn for a target. */
export function targetArgv(target: Target, python: string): string[] {
  switch (target.kind) {
    case 'script':
      return [python, target.script, ...target.args];
    case 'module':
      return [python, '-m', target.module, ...target.args];
    case 'command':
      return [...target.argv];
  }
}

/**
 * A command line as a user would type it into a POSIX shell, for messages:
 * a word with anything but letters, digits and `_@%+=:,./-` in it is
 * single-quoted (`python3 -c 'import sys; sys.exit(3)'`).
 */
export function shellText(argv: readonly string[]): string {
  return argv.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** NUL-separated fields of a /proc cmdline or environ file (the last NUL ends the last field). */
export function splitNul(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = buf.indexOf(0); i >= 0; i = buf.indexOf(0, start)) {
    out.push(buf.subarray(start, i));
    start = i + 1;
  }
  if (start < buf.length) out.push(buf.subarray(start));
  return out;
}

/**
 * The user's arguments as the bytes the kernel gave this process: Node
 * decodes argv as UTF-8 and replaces what is not with U+FFFD, so the program
 * would not get its own arguments back. They are the last `decoded.length`
 * fields of /proc/self/cmdline (before them: node, its options, the script);
 * undefined when the two do not agree (then the decoded strings are used).
 */
export function rawUserArgs(cmdline: Buffer, decoded: readonly string[]): Buffer[] | undefined {
  const fields = splitNul(cmdline);
  if (fields.length < decoded.length) return undefined;
  const raw = fields.slice(fields.length - decoded.length);
  return raw.every((b, i) => b.toString('utf8') === decoded[i]) ? raw : undefined;
}

/**
 * targetArgv as bytes: the target's own words are the last ones of the
 * user's arguments (the parser hands everything after the script, the module
 * or `--` to the program), so they are taken from `raw` unchanged.
 */
export function rawTargetArgv(target: Target, python: string, raw: readonly Buffer[]): Buffer[] {
  const tail = (n: number): Buffer[] => raw.slice(raw.length - n);
  switch (target.kind) {
    case 'script':
      return [Buffer.from(python), ...tail(target.args.length + 1)];
    case 'module':
      return [Buffer.from(python), Buffer.from('-m'), ...tail(target.args.length + 1)];
    case 'command':
      return tail(target.argv.length);
  }
}
