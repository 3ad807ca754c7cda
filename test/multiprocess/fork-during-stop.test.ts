// The OOM stop leaves no late starter behind (container.c, "Late starters"):
// processes forked while the container is being stopped (a fork Pool's
// worker handler replacing the workers the stop ended) used to outlive the
// container's exit 53 when they joined after the stopper's last scan, or
// were forked by the stopper after it. In a fork Pool such an orphan waited
// forever for the pool's queue lock (held by a worker the stop SIGKILLed),
// holding the program's stdout and stderr: pool-oom.test.ts's `fork` case
// hung once in CI that way.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type TestCgroup, cgroupPids, cgroupUnavailable, describeCgroup, killCgroup, makeCgroup } from '../helpers/cgroup.js';
import { fixtures } from '../helpers/cli.js';
import { shimmedEnv } from '../shim/shimmed.js';
import { readContainer, readStates, run } from './native-files.js';

const unavailable = cgroupUnavailable();
const script = join(fixtures, 'python', 'multiprocess', 'fork_during_stop.py');

let cg: TestCgroup | null = null;
afterEach(() => {
  cg?.remove();
  cg = null;
});

/** What is still in the cgroup after `ms` (one line each: parent, state, wait channel); then killed. */
async function leftovers(c: TestCgroup, ms: number): Promise<string> {
  const end = Date.now() + ms;
  while (cgroupPids(c).length && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
  const left = describeCgroup(c);
  killCgroup(c);
  return left;
}

describe.skipIf(unavailable !== null)(`processes forked during the OOM stop${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('none outlives the container: the root exits 53 and its cgroup empties', async () => {
    const made = makeCgroup(400 * 1024 * 1024);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const rd = mkdtempSync(join(tmpdir(), 'hw-mp-late-'));
    const r = await run('sh', ['-c', `${made.enterPrefix} python3 "$0"`, script], shimmedEnv(rd), 100_000);
    expect(r.code, r.stderr).toBe(53);
    const cont = readContainer(rd)!;
    const root = readStates(rd).find((s) => s.origin === 1)!;
    expect(cont.stopperPid, 'the root stopped the container').toBe(root.pid);
    // Before the fix: 3 to 6 children left, sleeping, their parent gone (ppid 1).
    expect(await leftovers(made, 5000)).toBe('');
  }, 120_000);
});
