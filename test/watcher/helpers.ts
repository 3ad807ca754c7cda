import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(prefix = 'hw-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface FakeShim {
  server: Server;
  path: string;
  commands: string[];
  close(): Promise<void>;
}

/**
 * A control socket that behaves like the shim's: one line in, one line out.
 * `answer` decides the reply (undefined: never answer).
 */
export async function fakeShim(path: string, answer: (cmd: string) => string | undefined = defaultAnswer): Promise<FakeShim> {
  const commands: string[] = [];
  const open = new Set<Socket>();
  const server = createServer((sock) => {
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const cmd = buf.slice(0, nl);
      commands.push(cmd);
      const a = answer(cmd);
      if (a !== undefined) sock.end(a + '\n');
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    server,
    path,
    commands,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function defaultAnswer(cmd: string): string {
  if (cmd === 'ping') return 'ok highwater 1 4242';
  if (cmd.startsWith('floor ')) return 'ok';
  if (cmd.startsWith('oom ')) return 'ok /run/hw-4242-1.dump';
  if (cmd === 'dump') return 'ok /run/hw-4242-1.dump';
  return 'error unknown-command';
}

/** A socket file nobody listens on (bound, never listening: connect gives ECONNREFUSED), as a killed shim leaves. */
export function deadSocket(path: string): void {
  execFileSync('/usr/bin/python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
}
