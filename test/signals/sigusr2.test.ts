// SIGUSR2 writes a report of the peak so far into a new report directory, and
// tracking goes on: the report at exit has what was allocated afterwards.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MiB, bytesAtLine, cliPath, expectNear, fixtures, freshDir, lineOf, readReport, repoRoot, reportDirs } from '../helpers/cli.js';

const script = join(fixtures, 'api', 'sigusr2.py');

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * Runs `highwater run sigusr2.py`; once the script says ready, sends SIGUSR2
 * to the Python process (`to: 'python'`) or to the CLI, which forwards it.
 */
async function signalledRun(to: 'python' | 'cli') {
  const outDir = freshDir('hw-out-');
  const child = spawn(process.execPath, [cliPath, 'run', '-o', outDir, '--no-browser', script], {
    cwd: repoRoot,
    env: { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  try {
    const pid = await waitFor('ready', () => {
      const m = /pid (\d+) ready/.exec(stdout);
      return m ? Number(m[1]) : undefined;
    });
    expect(reportDirs(outDir)).toEqual([]);
    process.kill(to === 'python' ? pid : child.pid!, 'SIGUSR2');
    const first = await waitFor('the SIGUSR2 report', () => reportDirs(outDir)[0]);
    // The signal did not stop the program: it is still waiting for its line.
    expect(stdout).not.toContain('done');
    child.stdin.end('go\n');
    const code = await closed;
    return { code, stdout, stderr, outDir, first, pid };
  } finally {
    clearTimeout(killer);
  }
}

describe('SIGUSR2', () => {
  for (const to of ['python', 'cli'] as const) {
    it(`sent to the ${to} process: a report of the peak so far, then tracking goes on`, async () => {
      const r = await signalledRun(to);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain('done');
      const dirs = reportDirs(r.outDir);
      expect(dirs).toHaveLength(2);
      expect(dirs[0]).toBe(r.first);
      const a = lineOf(script, 'A line');
      const b = lineOf(script, 'B line');
      const atSignal = readReport(dirs[0]!);
      const atExit = readReport(dirs[1]!);
      expect(atSignal.trigger).toBe('signal');
      expectNear(bytesAtLine(atSignal, 'sigusr2.py', a), 40 * MiB);
      expect(bytesAtLine(atSignal, 'sigusr2.py', b)).toBe(0);
      expectNear(atSignal.peakBytes, 40 * MiB, 0.1);
      expect(atExit.trigger).toBe('exit');
      expectNear(bytesAtLine(atExit, 'sigusr2.py', a), 40 * MiB);
      expectNear(bytesAtLine(atExit, 'sigusr2.py', b), 30 * MiB);
      expect(atExit.process.pid).toBe(r.pid);
    });
  }

  it('is announced when the program starts', async () => {
    const r = await signalledRun('python');
    expect(r.stderr).toMatch(new RegExp(`highwater: .*\`kill -USR2 ${r.pid}\` writes a report of the peak so far`));
  });
});
