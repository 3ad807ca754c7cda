/**
 * readReadings on a real cgroup v1 child created for the test. Needs a
 * writable /sys/fs/cgroup/memory (root, cgroup v1): skipped otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { locateMemoryCgroup } from '../../sidecar/src/memory/cgroup.js';
import { readReadings } from '../../sidecar/src/memory/read.js';

const ROOT = '/sys/fs/cgroup/memory';

function writable(): boolean {
  try {
    accessSync(ROOT, constants.W_OK);
    return existsSync(`${ROOT}/memory.limit_in_bytes`);
  } catch {
    return false;
  }
}
const canRun = writable();
if (!canRun) console.warn(`skipping cgroup v1 integration test: ${ROOT} is not a writable cgroup v1 memory controller`);

describe.skipIf(!canRun)('readReadings on a real cgroup v1 child', () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    child = undefined;
    if (dir) {
      // a cgroup directory is removed with rmdir once it has no processes
      for (let i = 0; i < 50 && existsSync(dir); i++) {
        try {
          rmdirSync(dir);
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      dir = undefined;
    }
  });

  it('finds the child cgroup and its 300 MiB limit', async () => {
    dir = `${ROOT}/hw-test-${randomBytes(4).toString('hex')}`;
    mkdirSync(dir);
    writeFileSync(`${dir}/memory.limit_in_bytes`, String(300 * 1024 * 1024));
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
    await new Promise((r) => child!.once('spawn', r));
    writeFileSync(`${dir}/cgroup.procs`, String(child.pid));
    expect(readFileSync(`${dir}/cgroup.procs`, 'utf8').trim().split('\n')).toContain(String(child.pid));

    expect(locateMemoryCgroup(child.pid!)).toEqual({ version: 1, dir });
    const r = readReadings(child.pid!);
    expect(r.source).toBe('cgroup-v1');
    expect(r.limitBytes).toBe(300 * 1024 * 1024);
    // usage may be 0: pages charged before the move stay with the old cgroup (move_charge_at_immigrate is off)
    expect(r.usageBytes).toBeGreaterThanOrEqual(0);
    expect(r.availableBytes).toBeLessThanOrEqual(300 * 1024 * 1024);
    expect(r.availableBytes).toBe(Math.min(r.hostAvailableBytes, r.limitBytes - r.workingSetBytes));
  });
});
