// OOM across processes, native side (issue 12): a pool worker trips the
// guard in a real memory cgroup; the container ends with 53 with no init (the
// root process itself) and under highwater-init (even when the command's own
// status is 1), and every other tracked process is stopped.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type TestCgroup, cgroupUnavailable, makeCgroup } from '../helpers/cgroup.js';
import { fixtures, repoRoot } from '../helpers/cli.js';
import { buildInit, cleanEnv } from '../init/init-helpers.js';
import { shimmedEnv } from '../shim/shimmed.js';
import { lineOf, readContainer, readStates, run } from './native-files.js';

const unavailable = cgroupUnavailable();
const leakPool = join(fixtures, 'python', 'multiprocess', 'leak_pool.py');
const LIMIT = 400 * 1024 * 1024;

let cg: TestCgroup | null = null;
afterEach(() => {
  cg?.remove();
  cg = null;
});

function inCgroup(): TestCgroup {
  const made = makeCgroup(LIMIT);
  if (typeof made === 'string') throw new Error(made);
  cg = made;
  return made;
}

/** A bundle laid out like /opt/highwater around this worktree's build. */
function bundle(): string {
  const home = mkdtempSync(join(tmpdir(), 'hw-mp-bundle-'));
  mkdirSync(join(home, 'lib'));
  symlinkSync(join(repoRoot, 'native', 'build', 'libhighwater.so'), join(home, 'lib', 'libhighwater.so'));
  symlinkSync(join(repoRoot, 'native', 'python'), join(home, 'python'));
  return home;
}

/** The pids still in the cgroup (every process of the container). */
function cgroupPids(c: TestCgroup): number[] {
  return readFileSync(join(c.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
}

async function settled(c: TestCgroup, ms = 15_000): Promise<number[]> {
  const end = Date.now() + ms;
  while (cgroupPids(c).length && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
  return cgroupPids(c);
}

function checkTripper(rd: string) {
  const c = readContainer(rd)!;
  expect(c.oomPid).not.toBe(0);
  expect(c.oomReason).toBe(1); // low-available
  expect(c.oomDumpDone).toBe(1);
  const states = readStates(rd);
  const tripper = states.find((s) => s.pid === c.oomPid)!;
  expect(tripper.origin, 'a worker tripped, not the root').toBe(2);
  expect(tripper.exitCode).toBe(0x100 + 53);
  // Its OOM dump names the leaking line.
  const dump = readdirSync(rd).find((f) => f.startsWith(`hw-${c.oomPid}-`) && f.endsWith('.dump'))!;
  expect(dump, 'the worker wrote its OOM dump').toBeDefined();
  const lines = readFileSync(join(rd, dump), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(lines[0].trigger).toBe('oom');
  const leak = lineOf(leakPool, 'LEAK_LINE');
  const funcs = new Map(lines.filter((l) => l.type === 'func').map((l) => [l.id, l.file]));
  const top = lines.filter((l) => l.type === 'stack' && l.snapshot === 'current').sort((a, b) => b.bytes - a.bytes)[0];
  const [fid, line] = top.frames[top.frames.length - 1];
  expect(`${funcs.get(fid)}:${line}`).toBe(`${leakPool}:${leak}`);
  const root = states.find((s) => s.origin === 1 && s.pid === c.stopperPid);
  expect(root, 'the root stopped the container').toBeDefined();
  return { c, states };
}

describe.skipIf(unavailable !== null)(`a pool worker runs out of memory${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('no init (env injection): the root process itself exits 53, the others are stopped', async () => {
    const c = inCgroup();
    const rd = mkdtempSync(join(tmpdir(), 'hw-mp-oom-'));
    const r = await run('sh', ['-c', `${c.enterPrefix} python3 "$0" spawn`, leakPool], shimmedEnv(rd), 180_000);
    expect(r.code, r.stderr).toBe(53);
    expect(r.stdout).not.toContain('[');
    checkTripper(rd);
    // Nothing of the container keeps running (the stop's SIGTERM, then SIGKILL).
    expect(await settled(c)).toEqual([]);
  });

  it('the stop does not wait the grace for a process that ignores SIGTERM (the resource tracker); a worker with a SIGTERM handler still gets to run it', async () => {
    const c = inCgroup();
    const rd = mkdtempSync(join(tmpdir(), 'hw-mp-stoptime-'));
    const mark = join(rd, 'term-mark');
    const r = await run(
      'sh',
      ['-c', `${c.enterPrefix} python3 "$0" spawn`, leakPool],
      shimmedEnv(rd, { TERM_MARK: mark, HIGHWATER_STOP_GRACE_MS: '10000' }),
      180_000,
    );
    const ended = Date.now();
    expect(r.code, r.stderr).toBe(53);
    const { c: cont } = checkTripper(rd);
    const dump = readdirSync(rd).find((f) => f.startsWith(`hw-${cont.oomPid}-`) && f.endsWith('.dump'))!;
    const oomMs = JSON.parse(readFileSync(join(rd, dump), 'utf8').split('\n')[0]!).timeMs as number;
    // A 10 s grace: before, the stop took the whole grace (the resource tracker); now well under half of it
    // (measured with the default 3 s grace: 3.1 s before, about 0.3 s after, on a loaded machine).
    expect(ended - oomMs).toBeLessThan(5000);
    expect(readFileSync(mark, 'utf8')).toBe('handled\n'); // its 0.5 s handler ran: SIGTERM had its chance
    expect(await settled(c)).toEqual([]);
  });

  it('the root itself trips: it stops its children (SIGTERM) and exits 53', async () => {
    const c = inCgroup();
    const rd = mkdtempSync(join(tmpdir(), 'hw-mp-root-'));
    const rootLeak = join(fixtures, 'python', 'multiprocess', 'root_leak.py');
    const r = await run('sh', ['-c', `${c.enterPrefix} python3 "$0"`, rootLeak], shimmedEnv(rd, { HIGHWATER_STOP_GRACE_MS: '20000' }), 180_000);
    expect(r.code, r.stderr).toBe(53);
    const cont = readContainer(rd)!;
    const root = readStates(rd).find((s) => s.origin === 1)!;
    expect(cont.oomPid).toBe(root.pid);
    expect(cont.stopperPid).toBe(root.pid);
    // The two children (sleeping 120 s) were stopped, not left behind.
    expect(await settled(c, 5000)).toEqual([]);
  });

  it('highwater-init ends with 53 even when the command itself exits 1', async () => {
    const init = buildInit();
    const home = bundle();
    const c = inCgroup();
    const rd = mkdtempSync(join(tmpdir(), 'hw-mp-init-'));
    // The python under `sh` is a root of its own (the shell is not Python):
    // it stops the container and exits 53, the shell then exits 1.
    const env = cleanEnv({ HIGHWATER_HOME: home, HIGHWATER_RUN_DIR: rd });
    const r = await run('sh', ['-c', `${c.enterPrefix} "$0" -- sh -c 'python3 "$0" spawn; exit 1' "$1"`, init, leakPool], env, 180_000);
    expect(r.stderr).toContain('a tracked process ran out of memory');
    expect(r.code, r.stderr).toBe(53);
    checkTripper(rd);
    expect(existsSync(join(rd, 'hw-container'))).toBe(true);
    expect(await settled(c)).toEqual([]);
  });
});

describe.skipIf(unavailable !== null)(`the kernel's OOM killer ends a worker${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('highwater-init ends with 137 when its cgroup counted an OOM kill, though the command exited 1', async () => {
    const init = buildInit();
    const home = bundle();
    const c = inCgroup();
    const rd = mkdtempSync(join(tmpdir(), 'hw-mp-init-kill-'));
    const poolLeak = join(fixtures, 'python', 'pool_leak.py');
    const before = Number(/^oom_kill (\d+)$/m.exec(readFileSync(join(c.dir, c.version === 1 ? 'memory.oom_control' : 'memory.events'), 'utf8'))![1]);
    const env = cleanEnv({
      HIGHWATER_HOME: home,
      HIGHWATER_RUN_DIR: rd,
      HIGHWATER_OOM_DETECTION: '0', // the guard off: the kernel's OOM killer acts
      KILL_ME_FIRST: '1',
      HOLD_SECONDS: '20',
      HOLD_MIB: '30',
    });
    const r = await run('sh', ['-c', `${c.enterPrefix} "$0" -- python3 "$1" spawn executor`, init, poolLeak], env, 180_000);
    const after = Number(/^oom_kill (\d+)$/m.exec(readFileSync(join(c.dir, c.version === 1 ? 'memory.oom_control' : 'memory.events'), 'utf8'))![1]);
    expect(after, 'the kernel killed a process of the cgroup').toBeGreaterThan(before);
    expect(r.stderr).toContain('BrokenProcessPool'); // the command's own status: 1
    expect(r.stderr).toContain("the kernel's OOM killer ended a process of the container (the command's status was 1): exiting with 137");
    expect(r.code, r.stderr).toBe(137);
  });
});
