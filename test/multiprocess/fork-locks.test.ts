// A fork while another thread of the parent holds one of the shim's locks:
// the child (the only thread left) must not find it held forever. The fork
// child handler re-initialises hw__intern_lock and control.c's park lock;
// the guard lock (taken around every memory reading on the allocation path)
// and the dump lock were inherited as the parent's thread held them: the
// child's first reading then waited for ever in pthread_mutex_lock.
// block_open.c holds the guard lock on demand: one thread's reading blocks
// inside open(2) until the test lets it go.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures } from '../helpers/cli.js';
import { buildTestLib } from '../helpers/native.js';
import { shimmedEnv } from '../shim/shimmed.js';
import { run } from './native-files.js';

const script = join(fixtures, 'python', 'multiprocess', 'fork_lock_held.py');

describe("a fork while another thread holds one of the shim's locks", () => {
  it.each([
    ['guard', "an allocation's memory reading: the child gets through its own first reading"],
    ['dump', 'a SIGUSR2 dump: the child writes its exit dump'],
  ])(
    '%s lock (%s)',
    async (mode) => {
      const blockOpen = buildTestLib('block_open');
      const dir = mkdtempSync(join(tmpdir(), 'hw-fork-locks-'));
      // The readings come from a fake /proc (HIGHWATER_TEST_ROOT): 1 TiB available, no cgroup.
      const root = join(dir, 'root');
      mkdirSync(join(root, 'proc'), { recursive: true });
      writeFileSync(join(root, 'proc', 'meminfo'), 'MemTotal:       1073741824 kB\nMemAvailable:   1073741824 kB\n');
      const runDir = join(dir, 'run');
      const [arm, held] = [join(dir, 'arm'), join(dir, 'held')];
      const env = shimmedEnv(runDir, { HIGHWATER_TEST_ROOT: root, BLOCK_OPEN_PATH: join(root, 'proc', 'meminfo'), BLOCK_OPEN_ARM: arm, BLOCK_OPEN_HELD: held });
      env.LD_PRELOAD = `${blockOpen} ${env.LD_PRELOAD}`;
      const r = await run('python3', [script, arm, held, mode], env, 60_000);
      expect(r.stdout, r.stderr).toContain('child ok');
      expect(r.code, r.stdout + r.stderr).toBe(0);
    },
    90_000,
  );
});
