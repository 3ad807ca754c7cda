// `highwater watch` against real Python processes under the shim: dumps
// rendered, post-mortem after kill -9, the run-dir-not-shared warning,
// SIGTERM, a read-only report directory, metrics of a real server.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesAtLine, freshDir, MiB, readReport } from '../helpers/cli.js';
import { completeReports, startPython, startWatch, waitForReports, watchLine, type Proc } from './processes.js';

const STEPS = 4;
const STEP_MIB = 8;
/** bytearray(n) allocates n + 1 bytes (a trailing NUL). */
const blocks = (steps: number, mib: number): number => steps * (mib * MiB + 1);
const held = blocks(STEPS, STEP_MIB);

describe('highwater watch', () => {
  const procs: Proc[] = [];
  const mounts: string[] = [];
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    for (const m of mounts.splice(0)) execFileSync('umount', [m]);
  });
  const watch = (...a: Parameters<typeof startWatch>) => {
    const p = startWatch(...a);
    procs.push(p);
    return p;
  };
  const python = (...a: Parameters<typeof startPython>) => {
    const p = startPython(...a);
    procs.push(p);
    return p;
  };

  it('renders the exit dump of a finished process once, counts it in metrics, and writes the termination log', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const termLog = join(freshDir('hw-term-'), 'termination-log');
    writeFileSync(termLog, '');
    const w = watch(runDir, out, ['--metrics-port', '0', '--warn-after', '0'], { HIGHWATER_TERMINATION_LOG: termLog });
    await w.waitFor(/metrics at (http:\S+)/);
    const url = /metrics at (http:\S+)/.exec(w.stderr())![1]!;

    const py = python(runDir, { STEPS: String(STEPS), STEP_MIB: String(STEP_MIB), EXIT_CODE: '3' });
    expect((await py.exited).code, py.stderr()).toBe(3);
    const dirs = await waitForReports(out, 1);
    expect(dirs, w.stderr()).toHaveLength(1);
    const report = readReport(dirs[0]!);
    expect(report.trigger).toBe('exit');
    expect(bytesAtLine(report, 'hold.py', watchLine)).toBe(held);
    expect(report.peakBytes).toBeGreaterThanOrEqual(held);

    // Once: no second report for the same dump; the dump and the process's files are gone from the run dir.
    await new Promise((r) => setTimeout(r, 1000));
    expect(completeReports(out)).toHaveLength(1);
    // Only the container file stays: highwater-init reads its OOM flag after the
    // command ends, so the watcher never removes it (docs/protocol.md).
    expect(readdirSync(runDir)).toEqual(['hw-container']);

    const metrics = await (await fetch(url)).text();
    expect(metrics).toMatch(/^highwater_reports_written_total\{trigger="exit"\} 1$/m);
    expect(metrics).toMatch(/^highwater_watched_processes 0$/m);
    expect(await (await fetch(url.replace('/metrics', '/healthz'))).text()).toBe('ok\n');
    expect((await fetch(url.replace('/metrics', '/readyz'))).status).toBe(200);

    const summary = readFileSync(termLog, 'utf8');
    expect(summary).toContain(`hold.py:${watchLine} return bytearray(STEP_MIB * 1024 * 1024)`);
    expect(summary).toContain(`report: ${join(dirs[0]!, 'index.html')}`);

    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('shows a live process in the metrics, then renders a post-mortem after kill -9', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const w = watch(runDir, out, ['--metrics-port', '0', '--warn-after', '0']);
    await w.waitFor(/metrics at (http:\S+)/);
    const url = /metrics at (http:\S+)/.exec(w.stderr())![1]!;
    const py = python(runDir, { STEPS: String(STEPS), STEP_MIB: String(STEP_MIB), HOLD_SECONDS: '60' });
    await py.waitFor('ready');
    const pid = py.child.pid!;
    await w.waitFor(`tracking process ${pid}`);
    // The gauges show the status of the last pass: wait for one after `ready`.
    let metrics = '';
    let peak = 0;
    const readingsIn = (m: string) => /^highwater_memory_available_bytes [1-9]\d*$/m.test(m);
    for (const end = Date.now() + 5_000; (peak < held || !readingsIn(metrics)) && Date.now() < end;) {
      metrics = await (await fetch(url)).text();
      peak = Number(/^highwater_tracked_peak_bytes (\d+)$/m.exec(metrics)?.[1] ?? 0);
    }
    expect(peak).toBeGreaterThanOrEqual(held);
    expect(peak).toBeLessThan(held + 4 * MiB);
    expect(metrics).toMatch(/^highwater_watched_processes 1$/m);
    expect(metrics).toMatch(/^highwater_tracked_bytes [1-9]\d*$/m);
    expect(metrics).toMatch(/^highwater_memory_available_bytes [1-9]\d*$/m);
    expect(metrics).toMatch(/^highwater_memory_working_set_bytes [1-9]\d*$/m);

    const killedAt = Date.now();
    py.child.kill('SIGKILL');
    expect((await py.exited).signal).toBe('SIGKILL');
    const dirs = await waitForReports(out, 1, 10_000);
    expect(dirs, w.stderr()).toHaveLength(1);
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    const report = readReport(dirs[0]!);
    expect(report.trigger).toBe('killed');
    expect(report.process.pid).toBe(pid);
    expect(bytesAtLine(report, 'hold.py', watchLine)).toBe(held);
    const after = await (await fetch(url)).text();
    expect(after).toMatch(/^highwater_reports_written_total\{trigger="killed"\} 1$/m);
    expect(after).toMatch(/^highwater_watched_processes 0$/m);
    expect(after).not.toMatch(/^highwater_tracked_peak_bytes /m);
  });

  it('from another PID namespace (sidecar mode) it uses the state file status and still notices kill -9', async (ctx) => {
    try {
      execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    } catch {
      ctx.skip('unshare --pid needs root');
    }
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const w = watch(runDir, out, ['--warn-after', '0'], { HIGHWATER_LOG_LEVEL: 'debug' }, ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child']);
    await w.waitFor('watching');
    const py = python(runDir, { STEPS: '3', STEP_MIB: '4', HOLD_SECONDS: '60' });
    await py.waitFor('ready');
    const pid = py.child.pid!;
    await w.waitFor(new RegExp(`tracking process ${pid} .*readings=state file`));
    await w.waitFor(`floor set for process ${pid}`);
    py.child.kill('SIGKILL');
    await py.exited;
    const dirs = await waitForReports(out, 1, 10_000);
    expect(dirs, w.stderr()).toHaveLength(1);
    const report = readReport(dirs[0]!);
    expect(report.trigger).toBe('killed');
    expect(report.process.pid).toBe(pid);
    expect(bytesAtLine(report, 'hold.py', watchLine)).toBe(blocks(3, 4));
    // The report's files are on disk before the watcher removes the process's
    // own; it says "report written" after (CI read the run dir in between).
    await w.waitFor(`report written to ${join(dirs[0]!, 'index.html')}`);
    // Only the container file stays: highwater-init reads its OOM flag after the
    // command ends, so the watcher never removes it (docs/protocol.md).
    expect(readdirSync(runDir)).toEqual(['hw-container']);
    // SIGTERM to the watcher itself (pid 1 of its namespace), not to unshare.
    const inner = Number(readFileSync(`/proc/${w.child.pid}/task/${w.child.pid}/children`, 'utf8').trim());
    process.kill(inner, 'SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('says within the deadline that the run dir has no tracked process, once, and keeps watching', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const started = Date.now();
    const w = watch(runDir, out, ['--warn-after', '1']);
    const message = `highwater: no tracked process in ${runDir} after 1 s: is the run dir shared with the application container (same volume at the same HIGHWATER_RUN_DIR)?`;
    await w.waitFor(message, 5_000);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1_000);
    expect(took).toBeLessThan(4_000);
    // Still watching: a process that comes later is reported.
    const py = python(runDir, { STEPS: '2', STEP_MIB: '4' });
    expect((await py.exited).code).toBe(0);
    const dirs = await waitForReports(out, 1);
    expect(dirs, w.stderr()).toHaveLength(1);
    expect(bytesAtLine(readReport(dirs[0]!), 'hold.py', watchLine)).toBe(blocks(2, 4));
    expect(w.stderr().split(message).length - 1).toBe(1);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
  });

  it('on SIGTERM renders the dumps and post-mortems still pending, then exits 0 promptly', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    // A poll interval of a minute: only the stop pass can render anything after the first look.
    const w = watch(runDir, out, ['--warn-after', '0'], { HIGHWATER_POLL_INTERVAL_MS: '60000' });
    await w.waitFor('watching');
    const finished = python(runDir, { STEPS: '3', STEP_MIB: '4' });
    const killed = python(runDir, { STEPS: '5', STEP_MIB: '4', HOLD_SECONDS: '60' });
    expect((await finished.exited).code).toBe(0);
    await killed.waitFor('ready');
    killed.child.kill('SIGKILL');
    await killed.exited;
    expect(completeReports(out)).toEqual([]);

    const t0 = Date.now();
    w.child.kill('SIGTERM');
    const end = await w.exited;
    expect(end.code, w.stderr()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const reports = completeReports(out).map(readReport);
    expect(reports.map((r) => r.trigger).sort()).toEqual(['exit', 'killed']);
    const byPid = new Map(reports.map((r) => [r.process.pid, r]));
    expect(bytesAtLine(byPid.get(finished.child.pid!)!, 'hold.py', watchLine)).toBe(blocks(3, 4));
    expect(bytesAtLine(byPid.get(killed.child.pid!)!, 'hold.py', watchLine)).toBe(blocks(5, 4));
  });

  it('a SIGTERM right after start (the job ended at once) is honoured: report, exit 0', async () => {
    const runDir = freshDir('hw-run-');
    const py = python(runDir, { STEPS: '2', STEP_MIB: '4', EXIT_CODE: '0' });
    expect((await py.exited).code).toBe(0);
    // The signal must come once the CLI's first import catches it and while
    // the rest still loads (before "watching": the watcher may not exist
    // yet). Node's boot (70 ms and more) ends with its own SIGTERM action,
    // which kills: a fixed delay raced it on a loaded machine. So the delay
    // grows by 50 ms while the signal killed a Node that had not started the
    // CLI (nothing written); the attempt that counts must have signalled
    // before "watching", or the early path was not what was tested.
    for (let delayMs = 100; ; delayMs += 50) {
      const out = freshDir('hw-out-');
      const w = watch(runDir, out, ['--warn-after', '0']);
      await new Promise((r) => setTimeout(r, delayMs));
      const loadedBeforeSignal = w.stderr().includes('watching');
      w.child.kill('SIGTERM');
      const end = await w.exited;
      if (end.signal === 'SIGTERM' && w.stderr() === '' && delayMs < 3000) continue; // still booting: nothing ran
      expect(loadedBeforeSignal, `the CLI had loaded within ${delayMs} ms: the signal came too late to test the early path`).toBe(false);
      expect(end, w.stderr()).toEqual({ code: 0, signal: null });
      const dirs = completeReports(out);
      expect(dirs, w.stderr()).toHaveLength(1);
      expect(bytesAtLine(readReport(dirs[0]!), 'hold.py', watchLine)).toBe(blocks(2, 4));
      return;
    }
  });

  it('read-only report directory: the error names the path and the errno, the raw dump is kept, the watcher goes on', async (ctx) => {
    const runDir = freshDir('hw-run-');
    const out = join(freshDir('hw-ro-'), 'reports');
    mkdirSync(out);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', out], { stdio: 'ignore' });
    } catch {
      ctx.skip('cannot mount a read-only tmpfs here (needs root)');
    }
    mounts.push(out);
    const w = watch(runDir, out, ['--warn-after', '0', '--metrics-port', '0']);
    await w.waitFor(/metrics at (http:\S+)/);
    const url = /metrics at (http:\S+)/.exec(w.stderr())![1]!;
    expect(w.stderr()).toContain(`cannot write reports to ${out}: EROFS`);
    const py = python(runDir, { STEPS: '2', STEP_MIB: '4', EXIT_CODE: '0' });
    expect((await py.exited).code).toBe(0);
    await w.waitFor('raw data kept at', 10_000);
    const dump = join(runDir, `hw-${py.child.pid}-1.dump`);
    expect(w.stderr()).toMatch(new RegExp(`could not render ${dump}: cannot write the report at ${out}/\\S+: EROFS`));
    expect(w.stderr()).toContain(`raw data kept at ${dump}`);
    expect(existsSync(dump)).toBe(true);
    expect(readFileSync(dump, 'utf8')).toMatch(/"type":"end"/);
    const metrics = await (await fetch(url)).text();
    expect(metrics).toMatch(/^highwater_report_failures_total\{reason="EROFS"\} 1$/m);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
    expect(existsSync(dump)).toBe(true);
  });

  it('--once renders what is there and exits', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const py = python(runDir, { STEPS: '2', STEP_MIB: '4', EXIT_CODE: '5' });
    expect((await py.exited).code).toBe(5);
    const w = watch(runDir, out, ['--once']);
    expect((await w.exited).code, w.stderr()).toBe(0);
    const dirs = completeReports(out);
    expect(dirs).toHaveLength(1);
    expect(bytesAtLine(readReport(dirs[0]!), 'hold.py', watchLine)).toBe(blocks(2, 4));
  });
});
