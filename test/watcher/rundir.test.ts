import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listRunDir } from '../../sidecar/src/watcher/rundir.js';
import { deadSocket, removeDir, tempDir } from './helpers.js';

describe('listRunDir', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => removeDir(dir));

  it('states, sockets and complete dumps in pid/seq order', () => {
    deadSocket(join(dir, 'hw-12.sock'));
    for (const f of ['hw-12.state', 'hw-12-10.dump', 'hw-12-2.dump', 'hw-7-1.dump', 'hw-12-3.dump.tmp', 'other.txt', 'x.dump']) {
      writeFileSync(join(dir, f), '');
    }
    mkdirSync(join(dir, 'sub'));
    const l = listRunDir(dir);
    expect([...l.states]).toEqual([[12, join(dir, 'hw-12.state')]]);
    expect([...l.sockets]).toEqual([[12, join(dir, 'hw-12.sock')]]);
    expect(l.dumps.map((d) => [d.pid, d.seq])).toEqual([
      [undefined, undefined],
      [7, 1],
      [12, 2],
      [12, 10],
    ]);
  });
  it('a missing run dir lists as empty', () => {
    expect(listRunDir(join(dir, 'gone'))).toEqual({ states: new Map(), sockets: new Map(), dumps: [], skipped: [] });
  });
  it('links, FIFOs, directories and wrong types named like run-dir files are listed as skipped, never as data', () => {
    writeFileSync(join(dir, 'victim'), 'secret');
    symlinkSync(join(dir, 'victim'), join(dir, 'hw-1-1.dump'));
    symlinkSync('/dev/zero', join(dir, 'hw-9-1.dump'));
    execFileSync('mkfifo', [join(dir, 'hw-7.state'), join(dir, 'hw-8-1.dump')]);
    mkdirSync(join(dir, 'hw-5.state'));
    writeFileSync(join(dir, 'hw-6.sock'), ''); // a regular file is not a socket
    writeFileSync(join(dir, 'hw-4.state'), '');
    const l = listRunDir(dir);
    expect([...l.states.keys()]).toEqual([4]);
    expect(l.sockets.size).toBe(0);
    expect(l.dumps).toEqual([]);
    const skipped = Object.fromEntries(l.skipped.map((s) => [s.path.slice(dir.length + 1), s.kind]));
    expect(skipped).toEqual({
      'hw-1-1.dump': 'a symbolic link',
      'hw-9-1.dump': 'a symbolic link',
      'hw-7.state': 'a FIFO',
      'hw-8-1.dump': 'a FIFO',
      'hw-5.state': 'a directory',
      'hw-6.sock': 'a regular file',
    });
  });
});
