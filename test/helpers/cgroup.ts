/**
 * Real memory cgroups for OOM tests: a child cgroup per test under whichever
 * memory controller this machine lets us write (cgroup v1's memory hierarchy
 * or a cgroup v2 tree with the memory controller), cleaned up afterwards.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCgroup {
  version: 1 | 2;
  dir: string;
  /** A shell prefix that moves the shell into the cgroup, then execs. */
  enterPrefix: string;
  remove(): void;
}

function v1Root(): string | null {
  const root = '/sys/fs/cgroup/memory';
  return existsSync(join(root, 'memory.limit_in_bytes')) ? root : null;
}

function v2Root(): string | null {
  for (const root of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
    try {
      const ctrl = readFileSync(join(root, 'cgroup.controllers'), 'utf8');
      const sub = readFileSync(join(root, 'cgroup.subtree_control'), 'utf8');
      if (ctrl.split(/\s+/).includes('memory') && sub.split(/\s+/).includes('memory')) return root;
    } catch {
      /* not this one */
    }
  }
  return null;
}

/** Why no cgroup can be made here, or null when one can. */
export function cgroupUnavailable(): string | null {
  const probe = makeCgroup(64 * 1024 * 1024);
  if (typeof probe === 'string') return probe;
  probe.remove();
  return null;
}

export function makeCgroup(limitBytes: number): TestCgroup | string {
  const name = `hw-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const r1 = v1Root();
  const r2 = r1 ? null : v2Root();
  const root = r1 ?? r2;
  if (!root) return 'no writable memory cgroup controller (v1 memory hierarchy or v2 with memory enabled)';
  const dir = join(root, name);
  try {
    mkdirSync(dir);
    if (r1) {
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
      // No swap for the test cgroup, when the kernel accounts it.
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) {
        try {
          writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
        } catch {
          /* swap accounting off: fine */
        }
      }
    } else {
      writeFileSync(join(dir, 'memory.max'), String(limitBytes));
      if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
    }
  } catch (e) {
    return `cannot create a memory cgroup at ${dir}: ${(e as Error).message}`;
  }
  return {
    version: r1 ? 1 : 2,
    dir,
    enterPrefix: `echo $$ > ${join(dir, 'cgroup.procs')} && exec`,
    remove() {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch {
          // Processes may still be exiting; the kernel frees the cgroup then.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
        }
      }
    },
  };
}

/** The pids in the cgroup now (every process of the test's container). */
export function cgroupPids(cg: TestCgroup): number[] {
  try {
    return readFileSync(join(cg.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * One line per process in the cgroup: pid, parent, state, kernel wait channel
 * of every thread, command line. What a hung test prints before it kills them.
 */
export function describeCgroup(cg: TestCgroup): string {
  const read = (p: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '?';
    }
  };
  return cgroupPids(cg)
    .map((pid) => {
      const status = read(`/proc/${pid}/status`);
      const field = (name: string) => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1] ?? '?';
      let wchans = '?';
      try {
        wchans = readdirSync(`/proc/${pid}/task`)
          .map((t) => read(`/proc/${pid}/task/${t}/wchan`) || '0')
          .join(',');
      } catch {
        /* gone */
      }
      const cmd = read(`/proc/${pid}/cmdline`).split('\0').join(' ').trim();
      return `pid ${pid} ppid ${field('PPid')} ${field('State')} wchan ${wchans}: ${cmd}`;
    })
    .join('\n');
}

/** SIGKILL to every process in the cgroup; the pids it was sent to. */
export function killCgroup(cg: TestCgroup): number[] {
  const pids = cgroupPids(cg);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return pids;
}

/** A `sh -c` command that moves itself into `cg`, then execs argv (each word single-quoted). */
export function inCgroupCommand(cg: TestCgroup, argv: string[]): string {
  return `${cg.enterPrefix} ${argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')}`;
}
