// The control socket serves many clients at once: silent or slow clients
// never hold up the watcher's ping, and a burst of connects all get answers.
import { afterEach, describe, expect, it } from 'vitest';
import { createConnection, type Socket } from 'node:net';
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixtures, freshDir } from '../helpers/cli.js';
import { sendControl } from '../../sidecar/src/watcher/control.js';
import { shimmedPython, type Shimmed } from './shimmed.js';

const sleeper = join(fixtures, 'python', 'sleeper.py');

function connectSilent(path: string, partial = ''): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    s.on('error', reject);
    s.on('connect', () => {
      if (partial) s.write(partial);
      resolve(s);
    });
  });
}

/** The answer the shim sends to a raw line (no client-side checks). */
function rawLine(path: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const s = createConnection({ path });
    s.setEncoding('utf8');
    s.on('connect', () => s.write(bytes));
    s.on('data', (d: string) => (buf += d));
    s.on('close', () => resolve(buf));
    // Closed with unread bytes of ours: the answer may come with a reset.
    s.on('error', (e) => (buf ? resolve(buf) : reject(e)));
  });
}

async function timedPing(sock: string): Promise<number> {
  const t0 = performance.now();
  const answer = await sendControl(sock, 'ping');
  const ms = performance.now() - t0;
  expect(answer).toMatch(/^ok highwater 1 \d+$/);
  return ms;
}

describe('control socket under slow and many clients', () => {
  let p: Shimmed | undefined;
  const held: Socket[] = [];
  afterEach(() => {
    for (const s of held.splice(0)) s.destroy();
    p?.kill();
  });

  async function start(): Promise<string> {
    const runDir = freshDir('hw-run-');
    p = shimmedPython(runDir, [sleeper]);
    await p.waitFor('ready');
    return join(runDir, `hw-${p.pid}.sock`);
  }

  it('20 silent clients and 20 half-line clients: a ping still answers in under 50 ms', async () => {
    const sock = await start();
    await timedPing(sock); // warm: the first connect also pays for Node's socket set-up
    for (let i = 0; i < 20; i++) held.push(await connectSilent(sock));
    for (let i = 0; i < 20; i++) held.push(await connectSilent(sock, 'pi'));
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await timedPing(sock));
    expect(Math.max(...times), `ping times ${times.map((t) => t.toFixed(1)).join(', ')} ms`).toBeLessThan(50);
  });

  it('200 silent clients: a ping still answers in under 50 ms', async () => {
    const sock = await start();
    await timedPing(sock);
    for (let i = 0; i < 200; i++) held.push(await connectSilent(sock));
    await sleep(50);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) times.push(await timedPing(sock));
    expect(Math.max(...times), `ping times ${times.map((t) => t.toFixed(1)).join(', ')} ms`).toBeLessThan(50);
  });

  it('holds at most a quarter of the fd limit for waiting clients (RLIMIT_NOFILE 64: 16)', async () => {
    const runDir = freshDir('hw-run-');
    p = shimmedPython(runDir, ['--nofile=64', 'python3', sleeper], {}, 'prlimit');
    await p.waitFor('ready');
    const sock = join(runDir, `hw-${p.pid}.sock`);
    for (let i = 0; i < 24; i++) held.push(await connectSilent(sock));
    await sleep(100);
    const sockets = readdirSync(`/proc/${p.pid}/fd`).filter((fd) => {
      try {
        return readlinkSync(`/proc/${p!.pid}/fd/${fd}`).startsWith('socket:');
      } catch {
        return false;
      }
    });
    // stdio pipes from Node are sockets too (3), the listening socket (1), 16 clients.
    expect(sockets.length).toBeLessThanOrEqual(3 + 1 + 16);
    expect(sockets.length).toBeGreaterThanOrEqual(1 + 16);
    // More silent clients than it keeps (24 > 16): the 8 others and the ping
    // wait in the backlog until the 16 kept ones had their 1 s grace.
    const t0 = performance.now();
    expect(await sendControl(sock, 'ping', { timeoutMs: 5000 })).toBe(`ok highwater 1 ${p.pid}`);
    expect(performance.now() - t0).toBeLessThan(1800);
  });

  it('at the fd limit a waiting client gets no answer and costs no CPU; once fds are back it is served', async () => {
    const runDir = freshDir('hw-run-');
    p = shimmedPython(runDir, ['--nofile=64', 'python3', join(fixtures, 'python', 'fd_limit.py')], {}, 'prlimit');
    await p.waitFor('full');
    const sock = join(runDir, `hw-${p.pid}.sock`);
    const answer = sendControl(sock, 'ping', { timeoutMs: 10_000 });
    await sleep(2000);
    p.send('\n');
    await p.waitFor('cpu');
    const cpu = Number(/cpu ([\d.]+)/.exec(p.stdout())![1]);
    expect(cpu).toBeLessThan(0.2); // 2 s with a connection pending in the backlog
    expect(await answer).toBe(`ok highwater 1 ${p.pid}`);
    p.send('\n');
    expect(await p.exit).toBe(0);
  });

  it('500 concurrent pings all get their answer', async () => {
    const sock = await start();
    const answers = await Promise.allSettled(Array.from({ length: 500 }, () => sendControl(sock, 'ping', { timeoutMs: 10_000 })));
    const failed = answers.filter((a) => a.status === 'rejected');
    expect(
      failed.length,
      failed
        .slice(0, 3)
        .map((f) => String((f as PromiseRejectedResult).reason))
        .join('; '),
    ).toBe(0);
    const values = answers.map((a) => (a as PromiseFulfilledResult<string>).value);
    expect(values.filter((v) => v !== `ok highwater 1 ${p!.pid}`)).toEqual([]);
  });

  it('bad lines get their error and the socket keeps serving', async () => {
    const sock = await start();
    expect(await rawLine(sock, 'x'.repeat(300) + '\n')).toBe('error bad-line\n');
    expect(await rawLine(sock, 'floor 12a\n')).toBe('error bad-argument\n');
    expect(await rawLine(sock, 'oom sideways\n')).toBe('error bad-argument\n');
    expect(await rawLine(sock, 'pi\0ng\n')).toBe('error unknown-command\n');
    expect(await rawLine(sock, 'launch\n')).toBe('error unknown-command\n');
    // A client that never finishes its line is answered and closed at its deadline.
    const t0 = performance.now();
    expect(await rawLine(sock, 'pin')).toBe('error bad-line\n');
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThan(1900);
    expect(waited).toBeLessThan(2600);
    expect(await timedPing(sock)).toBeLessThan(50);
  });
});
