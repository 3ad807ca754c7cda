/**
 * `highwater watch` (Docker's and Kubernetes' watcher) over a program that
 * execs another in the same process. The pid stays alive through the exec
 * and the new image takes over the pid's state file, so the watcher must
 * render the first program's exit dump without taking the pid for ended:
 * no post-mortem, no state file removed under the second program, and the
 * second program's own report at its end.
 * test/multiprocess/exec.test.ts covers the shim's side under `highwater run`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesAtLine, fixtures, freshDir, lineOf, MiB, readReport } from '../helpers/cli.js';
import { completeReports, startPython, startWatch, waitForReports, type Proc } from './processes.js';

const script = join(fixtures, 'python', 'exec_self.py');
const file = 'exec_self.py';

async function waitForFile(path: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}

describe('highwater watch: exec in the same process', () => {
  const procs: Proc[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  });

  /** A run dir, a report dir, a file the program writes, and a watcher ready on them. */
  async function watched(name: string) {
    const runDir = freshDir(`hw-${name}-run-`);
    const out = freshDir(`hw-${name}-out-`);
    const seenFile = join(freshDir(`hw-${name}-seen-`), 'seen.txt');
    const w = startWatch(runDir, out, ['--metrics-port', '0', '--warn-after', '0']);
    procs.push(w);
    await w.waitFor(/metrics at/);
    return { runDir, out, seenFile, w };
  }

  it('a report for each program, no post-mortem, and the state file left to the program that took it over', async () => {
    const { runDir, out, seenFile, w } = await watched('exec');
    // Each program holds its block 1.5 s: the watcher finds the first while it
    // runs and renders its exit dump while the second runs.
    const py = startPython(runDir, { EXEC_SELF_HOLD_S: '1.5' }, [script, 'python', seenFile]);
    procs.push(py);

    await waitForFile(seenFile);
    const pid = Number(readFileSync(seenFile, 'utf8').trim().split(/\s+/)[0]);
    expect(pid, py.stderr()).toBe(py.child.pid);
    const first = await waitForReports(out, 1);
    expect(first, w.stderr()).toHaveLength(1);
    // The first program's report is out and the second still runs: its state
    // file is there (the watcher did not clean up a pid that is still alive).
    expect(py.child.exitCode, py.stderr()).toBeNull();
    expect(readdirSync(runDir)).toContain(`hw-${pid}.state`);

    expect((await py.exited).code, py.stderr()).toBe(0);
    const dirs = await waitForReports(out, 2);
    // Time for a post-mortem to appear if the watcher wrongly made one.
    await new Promise((r) => setTimeout(r, 1500));
    expect(completeReports(out), w.stderr()).toHaveLength(2);
    const [a, b] = dirs.map(readReport) as [ReturnType<typeof readReport>, ReturnType<typeof readReport>];
    for (const r of [a, b]) {
      expect(r.trigger).toBe('exit');
      expect(r.process.pid).toBe(pid);
    }
    // Each block at its line: a bytearray of n MiB is n MiB and one byte.
    expect(bytesAtLine(a, file, lineOf(script, '# FIRST'))).toBe(50 * MiB + 1);
    expect(bytesAtLine(a, file, lineOf(script, '# SECOND'))).toBe(0);
    expect(bytesAtLine(b, file, lineOf(script, '# SECOND'))).toBe(30 * MiB + 1);
    expect(bytesAtLine(b, file, lineOf(script, '# FIRST'))).toBe(0);
    // Everything of the pid is gone once it ended; the container file stays
    // (docs/protocol.md).
    expect(readdirSync(runDir)).toEqual(['hw-container']);
    expect(w.stderr()).not.toMatch(/post-mortem/i);
  });

  it('a program that rewrites its cmdline (setproctitle) is still itself: its state file stays, one exit report', async () => {
    // The watcher told a process from another under the same pid by its
    // cmdline: a renamed one was taken for gone and its files removed while
    // it ran. The same start tick now says it is the same process.
    const retitle = join(fixtures, 'python', 'retitle.py');
    const { runDir, out, seenFile, w } = await watched('retitle');
    const py = startPython(runDir, {}, [retitle, seenFile]);
    procs.push(py);
    await waitForFile(seenFile);
    expect(readFileSync(seenFile, 'utf8')).toBe('renamed-worker');
    // Several of the watcher's passes (every 100 ms) over the renamed process.
    await new Promise((r) => setTimeout(r, 1000));
    expect(py.child.exitCode, py.stderr()).toBeNull();
    expect(readdirSync(runDir)).toContain(`hw-${py.child.pid}.state`);
    expect((await py.exited).code, py.stderr()).toBe(0);
    await waitForReports(out, 1);
    await new Promise((r) => setTimeout(r, 1000));
    const dirs = completeReports(out);
    expect(dirs, w.stderr()).toHaveLength(1);
    const report = readReport(dirs[0]!);
    expect(report.trigger).toBe('exit');
    expect(bytesAtLine(report, 'retitle.py', lineOf(retitle, '# HELD'))).toBe(20 * MiB + 1);
    expect(readdirSync(runDir)).toEqual(['hw-container']);
  });
});
