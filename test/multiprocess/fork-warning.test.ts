/**
 * Issue 12: CPython 3.12+ warns "This process (pid=…) is multi-threaded, use
 * of fork() may lead to deadlocks in the child" when the kernel counts more
 * than one thread in the parent right after os.fork(). The shim's control
 * thread must never be counted (it is parked around every Python-level fork),
 * while the program's own threads still are. Real interpreters under the real
 * CLI, compared with the same program run without highwater.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import {
  bytesAtLine,
  cliPath,
  expectNear,
  fixtures,
  freshDir,
  lineOf,
  MiB,
  pythons as allPythons,
  readReport,
  repoRoot,
  reportDirs,
  runProfiled,
} from '../helpers/cli.js';
import { run } from './native-files.js';

const dir = join(fixtures, 'python', 'forkwarn');
const fx = (f: string) => join(dir, f);

/** Every CPython found (pyenv's, HIGHWATER_TEST_PYTHONS) that has the warning (3.12+). */
const found = allPythons().filter((p) => /^3\.(1[2-9]|[2-9]\d)\./.test(p.version));
const pythons = found.map((p) => p.path);
const versionOf = new Map(found.map((p) => [p.path, p.version]));

/** Python's fork warnings in a stderr, with the pid left out. */
function forkWarnings(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.includes('is multi-threaded, use of fork()'))
    .map((l) => l.replace(/pid=\d+/, 'pid=N'));
}

/** What the program itself wrote to stderr: the CLI's own lines left out. */
function programStderr(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => !l.startsWith('highwater:'))
    .join('\n')
    .replace(/pid=\d+/g, 'pid=N');
}

async function plain(python: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return run(python, args, { ...process.env, ...env }, 60_000, dir);
}

/** Bytes a process held at a line of `file` in the container-wide report. */
function atLine(rep: ReportJson, pid: number, file: string, line: number): number {
  let n = 0;
  for (const s of rep.stacks) {
    // A report of one process has no pid frames. Here that is the root
    // alone: on Debian's 3.14.10 and 3.15.2 the 200 children that exit at
    // once are not in the report, where 3.12's and 3.13's are, at 0 bytes.
    const owner = s.frames[0]?.pid ?? (rep.processes ? undefined : pid);
    if (owner !== pid) continue;
    const own = [...s.frames].reverse().find((f) => f.file.endsWith(file));
    if (own?.line === line) n += s.bytes;
  }
  return n;
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The reports written so far; one still being written is left for the next look. */
function reportsSoFar(outDir: string): ReportJson[] {
  const out: ReportJson[] = [];
  for (const d of reportDirs(outDir)) {
    try {
      out.push(readReport(d));
    } catch {
      // report.json is written while we look
    }
  }
  return out;
}

/** One request line on a control socket; the reply line. */
function ask(socketPath: string, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no reply to ${line} on ${socketPath}`));
    }, 10_000);
    s.on('connect', () => s.write(`${line}\n`));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('error', reject);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got.trim());
    });
  });
}

describe.runIf(pythons.length > 0)('no multi-threaded fork warning of our making', () => {
  for (const python of pythons) {
    const v = versionOf.get(python)!;

    it(`${v}: a bare os.fork() in __main__ warns as little as without highwater, and both processes' bytes are at their lines`, async () => {
      const script = fx('bare_fork.py');
      const base = await plain(python, [script]);
      expect(base.code, base.stderr).toBe(0);
      const r = await runProfiled(['--', python, script]);
      expect(r.code, r.stderr).toBe(0);
      expect(forkWarnings(r.stderr)).toEqual(forkWarnings(base.stderr));
      expect(forkWarnings(r.stderr)).toEqual([]);
      expect(programStderr(r.stderr)).toBe(programStderr(base.stderr));
      const held = [...r.stdout.matchAll(/^held (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), bytes: Number(m[2]) }));
      expect(held).toHaveLength(2);
      const dirs = reportDirs(r.outDir);
      expect(dirs, r.stderr).toHaveLength(1);
      const rep = readReport(dirs[0]!);
      const parent = held.find((h) => h.pid === rep.process.pid)!;
      const child = held.find((h) => h.pid !== rep.process.pid)!;
      expect(parent, `the root ${rep.process.pid} printed its block`).toBeDefined();
      expect(parent.bytes).toBe(16 * MiB);
      expect(child.bytes).toBe(24 * MiB);
      // At the container peak both held their blocks, each at its own line.
      expectNear(atLine(rep, parent.pid, 'bare_fork.py', lineOf(script, 'PARENT-LINE')), parent.bytes);
      expectNear(atLine(rep, child.pid, 'bare_fork.py', lineOf(script, 'CHILD-LINE')), child.bytes);
      expect(atLine(rep, parent.pid, 'bare_fork.py', lineOf(script, 'CHILD-LINE'))).toBe(0);
      expect(atLine(rep, child.pid, 'bare_fork.py', lineOf(script, 'PARENT-LINE'))).toBe(0);
    }, 90_000);

    it(`${v}: the program's own thread at the fork still gets its warning, once, at its line`, async () => {
      const script = fx('threaded_fork.py');
      const base = await plain(python, [script]);
      expect(base.code, base.stderr).toBe(0);
      expect(forkWarnings(base.stderr)).toHaveLength(1);
      const r = await runProfiled(['--', python, script]);
      expect(r.code, r.stderr).toBe(0);
      expect(forkWarnings(r.stderr)).toEqual(forkWarnings(base.stderr));
      expect(programStderr(r.stderr)).toBe(programStderr(base.stderr));
    }, 90_000);

    for (const ownThread of ['0', '1']) {
      it(`${v}: -W always, a fork Pool(2)${ownThread === '1' ? ' after a thread of its own' : ''}: as many warnings as without highwater`, async () => {
        const args = ['-W', 'always', fx('pool_fork.py')];
        const env = { OWN_THREAD: ownThread };
        const base = await plain(python, args, env);
        expect(base.code, base.stderr).toBe(0);
        // Measured, not assumed: the workers' forks warn only when the program has a thread.
        expect(forkWarnings(base.stderr)).toHaveLength(ownThread === '1' ? 2 : 0);
        const r = await runProfiled(['--', python, ...args], { env });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.trim()).toBe(base.stdout.trim());
        expect(forkWarnings(r.stderr)).toEqual(forkWarnings(base.stderr));
      }, 90_000);
    }

    it(`${v}: a program that closed all our fds (wake pipe too) still forks without the warning`, async () => {
      const script = fx('closed_fds.py');
      const base = await plain(python, [script]);
      expect(base.code, base.stderr).toBe(0);
      const r = await runProfiled(['--', python, script]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('ok');
      expect(forkWarnings(r.stderr)).toEqual(forkWarnings(base.stderr));
      expect(programStderr(r.stderr)).toBe(programStderr(base.stderr));
      // Without the pipe the first park waits for the thread's tick (250 ms), not longer.
      const ms = [...r.stdout.matchAll(/^fork ms ([\d.]+)$/gm)].map((m) => Number(m[1]));
      expect(ms).toHaveLength(3);
      expect(Math.max(...ms)).toBeLessThan(2000);
    }, 90_000);

    it(`${v}: after 200 forks the control channel answers and SIGUSR2 still writes a report`, async () => {
      const script = fx('many_forks.py');
      const outDir = freshDir('hw-out-');
      const child = spawn(process.execPath, [cliPath, 'run', '-o', outDir, '--no-browser', '--', python, script], {
        cwd: repoRoot,
        env: { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', FORKS: '200' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const killer = setTimeout(() => child.kill('SIGKILL'), 80_000);
      try {
        const pid = await waitFor('ready', () => {
          const m = /pid (\d+) ready/.exec(stdout);
          return m ? Number(m[1]) : undefined;
        });
        const runDir = /^run dir (.+)$/m.exec(stdout)![1]!;
        const sock = join(runDir, `hw-${pid}.sock`);
        expect(await ask(sock, 'ping')).toBe(`ok highwater 1 ${pid}`);
        const dumped = await ask(sock, 'dump');
        expect(dumped).toMatch(/^ok \//);
        process.kill(pid, 'SIGUSR2');
        const atSignal = await waitFor('the SIGUSR2 report', () => reportsSoFar(outDir).find((rep) => rep.trigger === 'signal'));
        expectNear(atLine(atSignal, pid, 'many_forks.py', lineOf(script, 'AFTER-FORKS-LINE')), 32 * MiB);
        child.stdin.end('go\n');
        expect(await closed, stderr).toBe(0);
        expect(stdout).toContain(`done ${32 * MiB}`);
        expect(forkWarnings(stderr)).toEqual([]);
        const last = reportDirs(outDir).at(-1)!;
        expect(readReport(last).trigger).toBe('exit');
      } finally {
        clearTimeout(killer);
      }
    }, 90_000);
  }
});

describe('while the control thread is parked', () => {
  it('a request and a SIGUSR2 that come meanwhile are served once it is back', async () => {
    const script = fx('parked.py');
    const outDir = freshDir('hw-out-');
    const child = spawn(process.execPath, [cliPath, 'run', '-o', outDir, '--no-browser', '--', 'python3', script], {
      cwd: repoRoot,
      env: { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 80_000);
    try {
      const [pid, parkedThreads] = await waitFor('parked', () => {
        const m = /pid (\d+) parked, threads (\d+)/.exec(stdout);
        return m ? [Number(m[1]), Number(m[2])] : undefined;
      });
      // Parked: the kernel counts the main thread only.
      expect(parkedThreads).toBe(1);
      const runDir = /^run dir (.+)$/m.exec(stdout)![1]!;
      let answer: string | undefined;
      const ping = ask(join(runDir, `hw-${pid}.sock`), 'ping').then((a) => (answer = a));
      process.kill(pid, 'SIGUSR2');
      await sleep(1000);
      // Nobody served them while parked (the socket kept them waiting).
      expect(answer).toBeUndefined();
      expect(reportsSoFar(outDir).filter((r) => r.trigger === 'signal')).toEqual([]);
      child.stdin.write('go\n');
      await ping;
      expect(answer).toBe(`ok highwater 1 ${pid}`);
      const atSignal = await waitFor('the SIGUSR2 report', () => reportsSoFar(outDir).find((rep) => rep.trigger === 'signal'));
      // One process: its report's stacks carry no pid.
      expect(atSignal.process.pid).toBe(pid);
      expectNear(bytesAtLine(atSignal, 'parked.py', lineOf(script, 'PARKED-LINE')), 32 * MiB);
      await waitFor('resumed', () => (/resumed, threads (\d+)/.exec(stdout) ? true : undefined));
      expect(Number(/resumed, threads (\d+)/.exec(stdout)![1])).toBe(2);
      child.stdin.end('end\n');
      expect(await closed, stderr).toBe(0);
      expect(stdout).toContain('done');
    } finally {
      clearTimeout(killer);
    }
  }, 90_000);
});
