// Every Python process of the container is tracked (issue 12, native side):
// real interpreters under the real shim, bytes at named lines (±5 %) in each
// child's own state file, the process facts of docs/protocol.md, and the
// container file.
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { shimmedEnv } from '../shim/shimmed.js';
import { fixtures } from '../helpers/cli.js';
import { MiB, type ProcState, lineOf, near, readContainer, readStates, run } from './native-files.js';

const dir = join(fixtures, 'python', 'multiprocess');
const fx = (f: string) => join(dir, f);

function runDir(): string {
  return mkdtempSync(join(tmpdir(), 'hw-mp-'));
}

async function runPython(args: string[], extra: NodeJS.ProcessEnv = {}) {
  const rd = runDir();
  const r = await run('python3', args, shimmedEnv(rd, extra), 180_000, dir);
  return { ...r, rd, states: readStates(rd) };
}

const at = (s: ProcState, file: string, marker: string) => s.peakByLine.get(`${file}:${lineOf(fx(file), marker)}`);

beforeAll(() => {
  // The tests read the shim the build produced.
  expect(readdirSync(join(fixtures, '..', '..', 'native', 'build'))).toContain('libhighwater.so');
});

describe('Pool(4): each worker in its own state file', () => {
  for (const method of ['fork', 'spawn'] as const) {
    it(`${method}: (i + 1) × 8 MiB at the worker's line, in four workers of the root`, async () => {
      const r = await runPython([fx('pool_workers.py'), method]);
      expect(r.code, r.stderr).toBe(0);
      const root = r.states.find((s) => s.origin === 1)!;
      expect(root, 'a root state file').toBeDefined();
      const workerPids = r.stdout
        .trim()
        .split('\n')
        .map((l) => Number(l.split(' ')[0]));
      expect(new Set(workerPids).size).toBe(4);
      const got: number[] = [];
      for (const pid of workerPids) {
        const w = r.states.find((s) => s.pid === pid);
        expect(w, `state file of worker ${pid}`).toBeDefined();
        expect(w!.origin).toBe(method === 'fork' ? 3 : 2);
        expect(w!.trackedParentPid).toBe(root.pid);
        const bytes = at(w!, 'pool_workers.py', 'WORKER_ALLOC') ?? 0;
        got.push(bytes);
        // Its own line, nothing of the others': one of the four amounts.
        expect(
          [1, 2, 3, 4].some((k) => near(bytes, k * 8 * MiB)),
          `${bytes} bytes`,
        ).toBe(true);
        if (method === 'fork') {
          expect(w!.forkSeq).toBeGreaterThanOrEqual(1);
          // The parent's memory at the fork is not charged to the worker.
          expect(w!.inheritedBytes).toBeGreaterThan(MiB);
          expect(w!.peakBytes).toBeLessThan(w!.inheritedBytes + bytes);
        }
        expect(w!.containerEnded).toBe(1);
      }
      got.sort((a, b) => a - b);
      got.forEach((b, i) => expect(near(b, (i + 1) * 8 * MiB), `${b} vs ${(i + 1) * 8} MiB`).toBe(true));
      // The root allocated nothing at the worker line.
      expect(at(root, 'pool_workers.py', 'WORKER_ALLOC')).toBeUndefined();
      const c = readContainer(r.rd)!;
      expect(c.creatorPid).toBe(root.pid);
      expect(c.oomPid).toBe(0);
      // Everyone has left: the sum is back to 0, no slot is held.
      expect(c.sumBytes).toBe(0);
      expect(c.slots.every((s) => s.pid === 0)).toBe(true);
    });
  }
});

describe('the container peak', () => {
  it('is the moment the four workers held 80 MiB together; each part is in its cpeak area, within N quanta', async () => {
    const r = await runPython([fx('pool_workers.py'), 'fork']);
    expect(r.code, r.stderr).toBe(0);
    const c = readContainer(r.rd)!;
    const E = c.peakEpoch;
    // The processes in the peak, by the rule of docs/protocol.md.
    const parts = r.states.filter((s) => s.containerStartEpoch < E && (s.containerEnded === 0 || s.containerEndEpoch >= E));
    const partBytes = (s: ProcState) => (s.cpeakEpoch === E ? s.cpeakBytes : s.currentBytes);
    const total = parts.reduce((a, s) => a + partBytes(s), 0);
    const line = `pool_workers.py:${lineOf(fx('pool_workers.py'), 'WORKER_ALLOC')}`;
    const atLine = parts.reduce((a, s) => a + ((s.cpeakEpoch === E ? s.cpeakByLine : s.liveByLine).get(line) ?? 0), 0);
    // All four held their memory at once (the barrier): 8 + 16 + 24 + 32 MiB.
    expect(near(atLine, 80 * MiB), `${atLine / MiB} MiB at the line`).toBe(true);
    // The recorded peak and the sum of the parts differ by less than N quanta.
    expect(Math.abs(c.peakBytes - total)).toBeLessThan(parts.length * c.quantumBytes);
    expect(c.quantumBytes).toBe(MiB);
  });
});

describe('other process models', () => {
  it('ProcessPoolExecutor on forkserver: workers forked by the tracked forkserver', async () => {
    const r = await runPython([fx('executor_forkserver.py')]);
    expect(r.code, r.stderr).toBe(0);
    const root = r.states.find((s) => s.origin === 1)!;
    const pids = r.stdout
      .trim()
      .split('\n')
      .map((l) => Number(l.split(' ')[0]));
    const got = pids.map((pid) => {
      const w = r.states.find((s) => s.pid === pid)!;
      expect(w, `worker ${pid}`).toBeDefined();
      expect(w.origin).toBe(3);
      const server = r.states.find((s) => s.pid === w.trackedParentPid)!;
      expect(server.origin).toBe(2); // the forkserver: exec'd by the root
      expect(server.trackedParentPid).toBe(root.pid);
      return at(w, 'executor_forkserver.py', 'EXECUTOR_ALLOC') ?? 0;
    });
    got.sort((a, b) => a - b);
    expect(near(got[0], 12 * MiB) && near(got[1], 24 * MiB), `${got.map((b) => b / MiB)} MiB`).toBe(true);
  });

  it('a pre-fork os.fork() loop: 3 workers, inherited memory not charged, its free ignored', async () => {
    const r = await runPython([fx('prefork.py')]);
    expect(r.code, r.stderr).toBe(0);
    const root = r.states.find((s) => s.origin === 1)!;
    expect(near(at(root, 'prefork.py', 'PARENT_ALLOC'), 20 * MiB)).toBe(true);
    const workers = r.states.filter((s) => s.origin === 3).sort((a, b) => a.forkSeq - b.forkSeq);
    expect(workers.map((w) => w.forkSeq)).toEqual([1, 2, 3]);
    workers.forEach((w, i) => {
      expect(w.trackedParentPid).toBe(root.pid);
      expect(near(at(w, 'prefork.py', 'PREFORK_ALLOC'), (i + 1) * 10 * MiB), `worker ${i}`).toBe(true);
      expect(w.inheritedBytes).toBeGreaterThan(20 * MiB);
      // Freeing the 20 MiB it inherited took nothing off: never negative, never below its own.
      expect(w.currentBytes).toBeGreaterThanOrEqual(0);
      expect(w.peakByLine.get(`prefork.py:${lineOf(fx('prefork.py'), 'PARENT_ALLOC')}`)).toBeUndefined();
      expect(w.exitCode).toBe(0x100 + (i + 1) * 10); // os._exit seen by the shim
    });
  });

  it('subprocess of sys.executable, a shell script that execs python, one that runs it', async () => {
    const r = await runPython([fx('run_children.py'), 'python', 'script-exec', 'script-run']);
    expect(r.code, r.stderr).toBe(0);
    const root = r.states.find((s) => s.origin === 1)!;
    const pids = [...r.stdout.matchAll(/^child (\d+)$/gm)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(3);
    for (const pid of pids) {
      const c = r.states.find((s) => s.pid === pid)!;
      expect(c, `child ${pid}`).toBeDefined();
      expect(c.origin).toBe(2);
      // The shell in between is not tracked: the tracked parent is the root.
      expect(c.trackedParentPid).toBe(root.pid);
      expect(near(at(c, 'child.py', 'CHILD_ALLOC'), 15 * MiB)).toBe(true);
    }
    // script-run: python's own parent is the shell, not the root.
    const viaShell = r.states.find((s) => s.pid === pids[2])!;
    expect(viaShell.parentPid).not.toBe(root.pid);
  });

  it('a non-Python child (sort) is untouched: same output, same exit status, no file', async () => {
    const plain = await run('python3', [fx('run_children.py'), 'sort'], { ...process.env }, 60_000, dir);
    const r = await runPython([fx('run_children.py'), 'sort']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(plain.stdout);
    expect(r.stdout).toContain("sort 0 ['apple', 'fig', 'pear']");
    expect(r.stdout).toContain('sort-bad 2');
    // Only the root's files: no state, socket or dump of any sort process.
    const pids = new Set(
      readdirSync(r.rd)
        .map((f) => /^hw-(\d+)/.exec(f)?.[1])
        .filter(Boolean),
    );
    expect(pids.size).toBe(1);
    expect(r.states).toHaveLength(1);
    expect(readContainer(r.rd)!.processesEver).toBe(1);
  });

  it('HIGHWATER_CHILDREN=0 keeps the single-process behaviour: no child state file, no container file', async () => {
    const r = await runPython([fx('run_children.py'), 'python', 'fork'], { HIGHWATER_CHILDREN: '0' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.states).toHaveLength(1);
    expect(r.states[0].origin).toBe(0);
    expect(readContainer(r.rd)).toBeNull();
    // The same program with children on: the python child and the forked one are tracked.
    const on = await runPython([fx('run_children.py'), 'python', 'fork']);
    expect(on.states.map((s) => s.origin).sort()).toEqual([1, 2, 3]);
  });
});

describe('a process that dies without leaving (SIGKILL)', () => {
  it('the root reaps its slot within a second: its bytes leave the sum, its state file says ended', async () => {
    const r = await runPython([fx('killed_child.py')]);
    expect(r.code, r.stderr).toBe(0);
    const m = /^sum (-?\d+) child (\d+)$/m.exec(r.stdout)!;
    const child = r.states.find((s) => s.pid === Number(m[2]))!;
    // It held its 30 MiB until the kill, and never left by itself.
    expect(near(at(child, 'killed_child.py', 'KILLED_ALLOC'), 30 * MiB)).toBe(true);
    expect(child.exitCode).toBe(0);
    expect(child.containerEnded).toBe(1); // written by the root's reaper
    // While the root still ran, the sum no longer counted the dead child's
    // 30 MiB: only the root's own bytes (within a quantum) remain.
    const root = r.states.find((s) => s.origin === 1)!;
    expect(Number(m[1])).toBeLessThan(root.peakBytes + MiB);
    expect(Number(m[1])).toBeLessThan(30 * MiB);
  });
});

describe('a recycling pool (maxtasksperchild=1)', () => {
  it('reuses container slots: 30 workers over the run, a handful of slots, the sum back to 0', async () => {
    const r = await runPython([fx('recycling_pool.py')]);
    expect(r.code, r.stderr).toBe(0);
    const workers = Number(r.stdout.trim());
    expect(workers).toBeGreaterThanOrEqual(25);
    const c = readContainer(r.rd)!;
    // Every worker joined (the pool may start a few more that get no task).
    expect(c.processesEver).toBeGreaterThanOrEqual(workers + 1);
    // The root and two workers at a time (plus one being replaced).
    expect(c.slotsUsed).toBeLessThanOrEqual(6);
    expect(c.sumBytes).toBe(0);
    expect(r.states.filter((s) => s.origin === 3).every((s) => s.containerEnded === 1)).toBe(true);
  });
});
