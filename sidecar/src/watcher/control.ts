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
    let buf = '';
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
    const timer = setTimeout(
      () => finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: no answer to "${command}" within ${timeoutMs} ms`)),
      timeoutMs,
    );
    timer.unref();
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(command + '\n'));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(null, buf.slice(0, nl));
      else if (buf.length > 4096) finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: answer line too long`));
    });
    sock.on('end', () => {
      if (buf !== '') finish(null, buf);
      else finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: connection closed without an answer to "${command}"`));
    });
    sock.on('close', () => finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: connection closed without an answer to "${command}"`)));
    sock.on('error', (e: NodeJS.ErrnoException) =>
      finish(new HighwaterError('HW_ERR_CONTROL', `${socketPath}: ${e.code ?? e.message}`, { cause: e })),
    );
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
