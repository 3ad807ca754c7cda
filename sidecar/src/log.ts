/**
 * The one pino root logger (stderr), made by the CLI, with child loggers per
 * module. `text` format writes `highwater: <level>: <msg> key=value` lines so
 * that highwater's own output is recognisable in the program's stderr.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogFormat, LogLevel } from './config/config.js';

export type { Logger };

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'module']);

/** Format one pino JSON line as a human line. */
export function formatTextLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `highwater: ${json.trimEnd()}\n`;
  }
  const level = LEVEL_NAMES[o.level as number] ?? String(o.level);
  const mod = typeof o.module === 'string' ? `[${o.module}] ` : '';
  const extra = Object.entries(o)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `highwater: ${level}: ${mod}${String(o.msg ?? '')}${extra ? ' ' + extra : ''}\n`;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go. @default process.stderr */
  stream?: { write(s: string): unknown };
}

export function createRootLogger(opts: LoggerOptions): Logger {
  const out = opts.stream ?? process.stderr;
  const dest: DestinationStream =
    opts.format === 'json' ? { write: (s: string) => void out.write(s) } : { write: (s: string) => void out.write(formatTextLine(s)) };
  return pino({ level: opts.level, base: undefined }, dest);
}

/** A child logger for one module. */
export function moduleLogger(root: Logger, module: string): Logger {
  return root.child({ module });
}
