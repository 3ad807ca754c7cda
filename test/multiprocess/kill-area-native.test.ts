/**
 * The shim's kill area (native/shim/killsnap.c, docs/protocol.md "State
 * file"), straight from the bytes of real state files: a real interpreter
 * under the real shim, a cgroup v2 fixture tree (HIGHWATER_TEST_ROOT) whose
 * `memory.events` the program itself rewrites as the kernel would when its
 * OOM killer strikes another process. The copy holds what was live at the
 * move, at the named line (±5 %), whether the process goes on (the control
 * thread's tick), ends at once by returning (the bootstrap's atexit, before
 * the teardown frees it) or through os._exit; never for a count that did not
 * move, and never from a file that is not the kernel's (a symlink, a FIFO,
 * an oversized file).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shimmedEnv } from '../shim/shimmed.js';
import { fixtures } from '../helpers/cli.js';
import { MiB, type ProcState, lineOf, near, readStates, run } from './native-files.js';

const script = join(fixtures, 'python', 'multiprocess', 'oom_kill_bump.py');
const HELD = `oom_kill_bump.py:${lineOf(script, '# HELD')}`;
const AFTER = `oom_kill_bump.py:${lineOf(script, '# AFTER')}`;
const CHILD = `oom_kill_bump.py:${lineOf(script, '# CHILD')}`;

/** A container on a cgroup v2 host with cgroupns; the count starts at 3 (earlier kills: the baseline). */
function tree(): string {
  const root = mkdtempSync(join(tmpdir(), 'hw-killtree-'));
  const files: Record<string, string> = {
    'proc/self/cgroup': '0::/\n',
    'proc/self/mountinfo':
      '620 610 0:26 / / rw,relatime - overlay overlay rw\n' +
      '630 620 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n',
    'proc/meminfo': 'MemTotal:       16777216 kB\nMemFree:         8000000 kB\nMemAvailable:    8388608 kB\n',
    'proc/self/status': 'Name:\tpython3\nVmSwap:\t       0 kB\n',
    'sys/fs/cgroup/cgroup.controllers': 'cpuset cpu io memory pids\n',
    'sys/fs/cgroup/memory.max': `${4096 * MiB}\n`,
    'sys/fs/cgroup/memory.current': `${100 * MiB}\n`,
    'sys/fs/cgroup/memory.swap.current': '0\n',
    'sys/fs/cgroup/memory.stat': 'anon 1000\ninactive_file 0\nactive_file 0\n',
    'sys/fs/cgroup/memory.events': 'low 0\nhigh 0\nmax 12\noom 2\noom_kill 3\noom_group_kill 0\n',
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/**
 * Docker on a cgroup v1 host, the program in a child cgroup `job` of the
 * container's (whose limit rules): v1 counts a kill only in the victim's own
 * cgroup, so the shim reads `job`'s count as well as the limiting one's.
 */
function treeV1(): string {
  const root = mkdtempSync(join(tmpdir(), 'hw-killtree-v1-'));
  const files: Record<string, string> = {
    'proc/self/cgroup': '12:memory:/docker/0123abcd/job\n0::/system.slice/containerd.service\n',
    'proc/self/mountinfo':
      '700 690 0:26 / / rw,relatime - overlay overlay rw\n' +
      '710 700 0:33 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory\n',
    'proc/meminfo': 'MemTotal:       16777216 kB\nMemFree:         8000000 kB\nMemAvailable:    8388608 kB\n',
    'proc/self/status': 'Name:\tpython3\nVmSwap:\t       0 kB\n',
    'sys/fs/cgroup/memory/memory.limit_in_bytes': `${4096 * MiB}\n`,
    'sys/fs/cgroup/memory/memory.usage_in_bytes': `${100 * MiB}\n`,
    'sys/fs/cgroup/memory/memory.stat': 'total_inactive_file 0\n',
    'sys/fs/cgroup/memory/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
    'sys/fs/cgroup/memory/job/memory.limit_in_bytes': '9223372036854771712\n',
    'sys/fs/cgroup/memory/job/memory.usage_in_bytes': `${100 * MiB}\n`,
    'sys/fs/cgroup/memory/job/memory.stat': 'total_inactive_file 0\n',
    'sys/fs/cgroup/memory/job/memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n',
  };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

async function bump(
  mode: string,
  events = '/sys/fs/cgroup/memory.events',
  root = tree(),
): Promise<{ states: Map<number, ProcState>; stdout: string; before: number; after: number }> {
  const rd = mkdtempSync(join(tmpdir(), 'hw-killarea-'));
  const before = Date.now();
  const r = await run('python3', [script, mode, events], shimmedEnv(rd, { HIGHWATER_TEST_ROOT: root }), 60_000);
  const after = Date.now();
  expect(r.code, r.stderr).toBe(0);
  return { states: new Map(readStates(rd).map((s) => [s.pid, s])), stdout: r.stdout, before, after };
}

function pidOf(stdout: string, tag = ''): number {
  const m = new RegExp(`^pid (\\d+)${tag ? ` ${tag}` : ''}$`, 'm').exec(stdout);
  if (!m) throw new Error(`no pid ${tag} in ${stdout}`);
  return Number(m[1]);
}

describe('the kill area, written by the shim when the cgroup oom_kill count moves', () => {
  it('tick: what was live at the move (40 MiB at its line), not the allocation after it; only the first move', async () => {
    const r = await bump('tick');
    const s = r.states.get(pidOf(r.stdout))!;
    expect(s.killMs).toBeGreaterThan(r.before);
    expect(s.killMs).toBeLessThan(r.after);
    expect(near(s.killByLine.get(HELD), 40 * MiB), `${s.killByLine.get(HELD)}`).toBe(true);
    expect(s.killByLine.get(AFTER) ?? 0).toBe(0);
    expect(s.killBytes).toBeGreaterThanOrEqual(40 * MiB);
    expect(s.killBytes).toBeLessThan(48 * MiB);
    // The live area at the end says otherwise: what this copy is for.
    expect(s.liveByLine.get(HELD) ?? 0).toBe(0);
  }, 60_000);

  it('cgroup v1, the program in a child cgroup of the limiting one: its own cgroup’s count moving is seen', async () => {
    const r = await bump('tick', '/sys/fs/cgroup/memory/job/memory.oom_control', treeV1());
    const s = r.states.get(pidOf(r.stdout))!;
    expect(s.killMs).toBeGreaterThan(0);
    expect(near(s.killByLine.get(HELD), 40 * MiB), `${s.killByLine.get(HELD)}`).toBe(true);
    expect(s.killByLine.get(AFTER) ?? 0).toBe(0);
  }, 60_000);

  it.each(['atexit', '_exit'])(
    '%s: a process that ends at once after the move is caught on its way out, holding its 40 MiB',
    async (mode) => {
      const r = await bump(mode);
      const s = r.states.get(pidOf(r.stdout))!;
      expect(s.killMs).toBeGreaterThan(0);
      expect(near(s.killByLine.get(HELD), 40 * MiB), `${s.killByLine.get(HELD)}`).toBe(true);
    },
    60_000,
  );

  it.each(['none', 'symlink', 'fifo', 'big'])(
    '%s: no copy (the count did not move, or the file is not the kernel’s)',
    async (mode) => {
      const r = await bump(mode);
      const s = r.states.get(pidOf(r.stdout))!;
      expect(s.killMs).toBe(0);
      expect(s.killBytes).toBe(0);
      expect(s.killByLine.size).toBe(0);
    },
    60_000,
  );

  it('fork: a child forked before the move copies its own block; one forked after has its own baseline and no copy', async () => {
    const r = await bump('fork');
    const parent = r.states.get(pidOf(r.stdout))!;
    expect(near(parent.killByLine.get(HELD), 40 * MiB)).toBe(true);
    const before = r.states.get(pidOf(r.stdout, 'before'))!;
    expect(before.killMs).toBeGreaterThan(0);
    expect(near(before.killByLine.get(CHILD), 8 * MiB), `${before.killByLine.get(CHILD)}`).toBe(true);
    expect(before.killByLine.get(HELD) ?? 0).toBe(0); // the parent's block is not charged to it
    const after = r.states.get(pidOf(r.stdout, 'after'))!;
    expect(after.killMs).toBe(0);
  }, 60_000);
});
