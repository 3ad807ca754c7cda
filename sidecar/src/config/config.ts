/**
 * The one typed configuration of the CLI and the watcher. Precedence: flag,
 * then `HIGHWATER_*` environment variable, then default; validated once by
 * loadConfig(). Every field and variable is listed in docs/configuration.md.
 */
import { HighwaterError } from '../errors.js';
import { DEFAULT_MIN_AVAILABLE, type MinAvailable } from '../memory/heuristics.js';
import { parseMinAvailable, parseSize } from './size.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = 'text' | 'json';

export interface Config {
  /**
   * Directory that receives reports (one timestamped sub-directory each).
   * Flag `-o/--output`, env `HIGHWATER_OUTPUT_DIR`.
   * @default 'highwater-result'
   */
  outputDir: string;
  /**
   * Put each report in a timestamped sub-directory of outputDir.
   * Flag `--no-timestamp` (render only).
   * @default true
   */
  timestampedSubdir: boolean;
  /**
   * Open the report in a browser when a display is available (DISPLAY or
   * WAYLAND_DISPLAY set). Flag `--no-browser`, env `HIGHWATER_OPEN_BROWSER=0`.
   * @default true
   */
  openBrowser: boolean;
  /**
   * The low-available and swap rules; a failed allocation always fires.
   * Flag `--disable-oom-detection`, env `HIGHWATER_OOM_DETECTION=0`.
   * @default true
   */
  oomDetection: boolean;
  /**
   * The floor under which available memory means OOM: bytes and/or a
   * percentage of total memory, the larger wins.
   * Flag `--min-available SIZE`, env `HIGHWATER_MIN_AVAILABLE`.
   * @default { bytes: 104857600, percent: 2 } (max(100 MiB, 2 %))
   */
  minAvailable: MinAvailable;
  /**
   * How often the watcher takes readings, in milliseconds (10–60000).
   * Env `HIGHWATER_POLL_INTERVAL_MS`.
   * @default 100
   */
  pollIntervalMs: number;
  /**
   * Run dir to use instead of a private one (it must exist and is not
   * removed). Flag `--run-dir DIR`. `HIGHWATER_RUN_DIR` is deliberately not
   * read by `highwater run`: it is set for the child, and a nested
   * `highwater run` must not share its parent's run dir.
   * @default undefined (a private mkdtemp directory, mode 0700, removed at the end)
   */
  runDir: string | undefined;
  /**
   * Level of highwater's own log lines (stderr). Env `HIGHWATER_LOG_LEVEL`.
   * @default 'warn'
   */
  logLevel: LogLevel;
  /**
   * `text`: `highwater: <level>: <message>` lines; `json`: pino JSON lines.
   * Env `HIGHWATER_LOG_FORMAT`.
   * @default 'text'
   */
  logFormat: LogFormat;
  /**
   * Python executable for `highwater run script.py` and `-m module`.
   * Env `HIGHWATER_PYTHON`.
   * @default 'python3'
   */
  python: string;
  /**
   * `highwater run`: lower the BLAS/OpenMP/numexpr/BLOSC thread-pool
   * defaults to one thread (defaults only; the program can still ask for
   * more). Flags `--limit-threads` / `--no-limit-threads`, env
   * `HIGHWATER_LIMIT_THREADS`. See docs/configuration.md for what each costs.
   * @default false
   */
  limitThreads: boolean;
  /**
   * Byte-sampling of stack attribution: mean bytes between samples, 0 =
   * exact (every allocation's stack). Flag `--sample-rate SIZE`, env
   * `HIGHWATER_SAMPLE_RATE`.
   * @default 0
   */
  sampleRate: number;
  /**
   * Track every Python child (subprocess, multiprocessing, os.fork); false
   * keeps the single-process behaviour. Flag `--no-children`, env
   * `HIGHWATER_CHILDREN` (docs/protocol.md, "Multiple processes").
   * Undefined (the default) means on.
   */
  children?: boolean;
}

/** Values that came from command-line flags (undefined = not given). */
export interface ConfigFlags {
  outputDir?: string;
  timestampedSubdir?: boolean;
  openBrowser?: boolean;
  oomDetection?: boolean;
  minAvailable?: string;
  runDir?: string;
  limitThreads?: boolean;
  sampleRate?: string;
  children?: boolean;
}

export const DEFAULTS: Readonly<Config> = Object.freeze({
  outputDir: 'highwater-result',
  timestampedSubdir: true,
  openBrowser: true,
  oomDetection: true,
  minAvailable: DEFAULT_MIN_AVAILABLE,
  pollIntervalMs: 100,
  runDir: undefined,
  logLevel: 'warn',
  logFormat: 'text',
  python: 'python3',
  limitThreads: false,
  sampleRate: 0,
});

/** Largest sampling rate accepted: 1 TiB (the shim's size field is 40 bits). */
export const MAX_SAMPLE_RATE = 2 ** 40;

/** `--sample-rate` / `HIGHWATER_SAMPLE_RATE`: a size in bytes, `0` = exact. */
export function parseSampleRate(text: string, what: string): number {
  let bytes: number;
  try {
    const size = parseSize(text, what);
    if (size.kind !== 'bytes') throw new Error('percent');
    bytes = size.bytes;
  } catch {
    throw configError(what, text, 'a size in bytes (0 = exact, 4096, 256KiB, 1MiB)');
  }
  if (bytes > MAX_SAMPLE_RATE) throw configError(what, text, 'at most 1TiB');
  return bytes;
}

/** HW_ERR_CONFIG naming the flag or variable, the value and what is accepted. */
export function configError(name: string, value: string, expected: string): HighwaterError {
  return new HighwaterError('HW_ERR_CONFIG', `invalid value for ${name}: ${JSON.stringify(value)}; expected ${expected}`);
}

export function parseBool(value: string, name: string): boolean {
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw configError(name, value, '1/true/yes/on or 0/false/no/off');
}

function nonEmpty(value: string, name: string): string {
  if (value.trim() === '') throw configError(name, value, 'a non-empty value');
  return value;
}

/** Merge flags, `HIGHWATER_*` variables and defaults, and validate. Raises `HW_ERR_CONFIG`. */
export function loadConfig(flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const e = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const envBool = (name: string): boolean | undefined => {
    const v = e(name);
    return v === undefined ? undefined : parseBool(v, name);
  };

  let minAvailable: MinAvailable = DEFAULTS.minAvailable;
  if (flags.minAvailable !== undefined) minAvailable = parseMinAvailable(flags.minAvailable, '--min-available');
  else if (e('HIGHWATER_MIN_AVAILABLE')) minAvailable = parseMinAvailable(e('HIGHWATER_MIN_AVAILABLE')!, 'HIGHWATER_MIN_AVAILABLE');

  let pollIntervalMs = DEFAULTS.pollIntervalMs;
  const poll = e('HIGHWATER_POLL_INTERVAL_MS');
  if (poll !== undefined) {
    pollIntervalMs = Number(poll);
    if (!/^\d+$/.test(poll.trim()) || pollIntervalMs < 10 || pollIntervalMs > 60_000) {
      throw configError('HIGHWATER_POLL_INTERVAL_MS', poll, 'an integer number of milliseconds from 10 to 60000');
    }
  }

  const logLevel = (e('HIGHWATER_LOG_LEVEL') ?? DEFAULTS.logLevel).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw configError('HIGHWATER_LOG_LEVEL', logLevel, LOG_LEVELS.join('/'));
  }
  const logFormat = (e('HIGHWATER_LOG_FORMAT') ?? DEFAULTS.logFormat).toLowerCase();
  if (logFormat !== 'text' && logFormat !== 'json') throw configError('HIGHWATER_LOG_FORMAT', logFormat, 'text or json');

  const outputDir = flags.outputDir !== undefined ? nonEmpty(flags.outputDir, '-o') : (e('HIGHWATER_OUTPUT_DIR') ?? DEFAULTS.outputDir);

  return {
    outputDir,
    timestampedSubdir: flags.timestampedSubdir ?? DEFAULTS.timestampedSubdir,
    openBrowser: flags.openBrowser ?? envBool('HIGHWATER_OPEN_BROWSER') ?? DEFAULTS.openBrowser,
    oomDetection: flags.oomDetection ?? envBool('HIGHWATER_OOM_DETECTION') ?? DEFAULTS.oomDetection,
    minAvailable,
    pollIntervalMs,
    runDir: flags.runDir !== undefined ? nonEmpty(flags.runDir, '--run-dir') : undefined,
    logLevel: logLevel as LogLevel,
    logFormat,
    python: e('HIGHWATER_PYTHON') ?? DEFAULTS.python,
    limitThreads: flags.limitThreads ?? envBool('HIGHWATER_LIMIT_THREADS') ?? DEFAULTS.limitThreads,
    sampleRate:
      flags.sampleRate !== undefined
        ? parseSampleRate(flags.sampleRate, '--sample-rate')
        : e('HIGHWATER_SAMPLE_RATE') !== undefined
          ? parseSampleRate(e('HIGHWATER_SAMPLE_RATE')!, 'HIGHWATER_SAMPLE_RATE')
          : DEFAULTS.sampleRate,
    children: flags.children ?? envBool('HIGHWATER_CHILDREN'), // undefined: on
  };
}
