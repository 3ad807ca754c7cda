import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { controlOk, sendControl } from '../../sidecar/src/watcher/control.js';
import { fakeShim, removeDir, tempDir, type FakeShim } from './helpers.js';

async function controlError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(isHighwaterError(e, 'HW_ERR_CONTROL')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected HW_ERR_CONTROL');
}

describe('sendControl', () => {
  let dir: string;
  let shim: FakeShim | undefined;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(async () => {
    await shim?.close();
    shim = undefined;
    removeDir(dir);
  });

  it('sends one line and returns the answer line', async () => {
    shim = await fakeShim(join(dir, 'hw-4242.sock'));
    expect(await sendControl(shim.path, 'ping')).toBe('ok highwater 1 4242');
    expect(await sendControl(shim.path, 'floor 104857600')).toBe('ok');
    expect(await sendControl(shim.path, 'bogus')).toBe('error unknown-command');
    expect(shim.commands).toEqual(['ping', 'floor 104857600', 'bogus']);
  });
  it('controlOk rejects a non-ok answer with the answer in the message', async () => {
    shim = await fakeShim(join(dir, 'hw-4242.sock'), () => 'error forbidden');
    expect(await controlError(controlOk(shim.path, 'dump'))).toMatch(/error forbidden/);
  });
  it('times out when the peer never answers', async () => {
    shim = await fakeShim(join(dir, 'hw-4242.sock'), () => undefined);
    expect(await controlError(sendControl(shim.path, 'ping', { timeoutMs: 100 }))).toMatch(/no answer.*100 ms/);
  });
  it('a missing socket is HW_ERR_CONTROL (ENOENT)', async () => {
    expect(await controlError(sendControl(join(dir, 'nope.sock'), 'ping'))).toMatch(/ENOENT/);
  });
  it('a file that is not a socket is HW_ERR_CONTROL', async () => {
    writeFileSync(join(dir, 'hw-1.sock'), '');
    expect(await controlError(sendControl(join(dir, 'hw-1.sock'), 'ping'))).toMatch(/ECONNREFUSED|ENOTSOCK/);
  });
  it('an empty answer line is still an answer', async () => {
    shim = await fakeShim(join(dir, 'hw-4242.sock'), () => '');
    expect(await sendControl(shim.path, 'ping')).toBe('');
  });
  it('a peer that closes without answering is HW_ERR_CONTROL', async () => {
    const path = join(dir, 'hw-4243.sock');
    const server = createServer((s) => {
      s.resume(); // read to EOF so the server side closes
      s.end();
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      expect(await controlError(sendControl(path, 'ping'))).toMatch(/closed without an answer/);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
  it('refuses commands with a newline or over 256 bytes', async () => {
    expect(await controlError(sendControl('/nonexistent', 'a\nb'))).toMatch(/invalid control command/);
    expect(await controlError(sendControl('/nonexistent', 'x'.repeat(300)))).toMatch(/invalid control command/);
  });
});
