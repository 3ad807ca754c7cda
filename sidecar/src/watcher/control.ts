/**
 * Client for the shim's control socket (docs/protocol.md, "Control channel"):
 * one command line per connection, one answer line back.
 */
import { createConnection } from 'node:net';
import { HighwaterError } from '../errors.js';

export interface ControlOptions {
  /** Give up after this long without a full answer line. @default 2000 */
  timeoutMs?: number;
}

/** Longest command line the shim accepts, newline included. */
export const MAX_COMMAND_BYTES = 256;

/** Longest answer accepted; the shim's are one short line. */
export const MAX_ANSWER_CHARS = 4096;

/**
 * The answer as it arrives in chunks: the first line is the answer. Pure, so
 * that it can be fuzzed (test/fuzz): whatever the peer sends, the result is a
 * line without a newline of at most MAX_ANSWER_CHARS, or HW_ERR_CONTROL.
 */
export class AnswerLine {
  private buf = '';
  constructor(private readonly socketPath: string) {}

  /** The answer once a newline arrived, else undefined. */
  push(chunk: string): string | undefined {
    this.buf += chunk;
    const nl = this.buf.indexOf('\n');
    if (nl >= 0 && nl <= MAX_ANSWER_CHARS) return this.buf.slice(0, nl);
    if (this.buf.length > MAX_ANSWER_CHARS) throw new HighwaterError('HW_ERR_CONTROL', `${this.socketPath}: answer line too long`);
    return undefined;
  }

  /** The peer closed: what it sent without a newline, or undefined when nothing. */
  end(): string | undefined {
    return this.buf === '' ? undefined : this.buf;
  }
}

/**
 * Send `command` to the socket at `socketPath` and return the answer line
 * (without its newline), e.g. `ok highwater 1 12` or `error unknown-command`.
 * Connection failures, a closed connection without an answer and timeouts
 * raise `HW_ERR_CONTROL`.
 */
export function sendControl(socketPath: string, command: string, opts: ControlOptions = {}): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  if (command.includes('\n') || Buffer.byteLength(command) + 1 > MAX_COMMAND_BYTES) {
    return Promise.reject(new HighwaterError('HW_ERR_CONTROL', `invalid control command ${JSON.stringify(command.slice(0, 40))}`));
  }
  return new Promise<string>((resolve, reject) => {
    const answer = new AnswerLine(socketPath);
    let settled = false;
    const sock = createConnection({ path: socketPath });
    const finish = (err: HighwaterError | null, line?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(line!);
    };
    const timer = setTimeout(() => finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: no answer to "${command}" within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(command + '\n'));
    sock.on('data', (chunk: string) => {
      try {
        const line = answer.push(chunk);
        if (line !== undefined) finish(null, line);
      } catch (e) {
        finish(e as HighwaterError);
      }
    });
    sock.on('end', () => {
      const partial = answer.end();
      if (partial !== undefined) finish(null, partial);
      else finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: connection closed without an answer to "${command}"`));
    });
    sock.on('close', () => finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: connection closed without an answer to "${command}"`)));
    sock.on('error', (e: NodeJS.ErrnoException) => finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: ${e.code ?? e.message}`, { cause: e })));
  });
}

/** Like sendControl, but an answer other than `ok…` raises `HW_ERR_CONTROL` with that answer. */
export async function controlOk(socketPath: string, command: string, opts: ControlOptions = {}): Promise<string> {
  const answer = await sendControl(socketPath, command, opts);
  if (answer !== 'ok' && !answer.startsWith('ok ')) {
    throw new HighwaterError('HW_ERR_CONTROL', `${socketPath}: "${command}" answered "${answer}"`);
  }
  return answer;
}
