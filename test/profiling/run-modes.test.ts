// `highwater run` as a user drives it: -m with args, pass-through of stdio and
// exit codes, a raising script, SIGTERM, and the bad-input cases.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { MiB, bytesAtLine, expectNear, fixtures, lineOf, onlyReport, reportDirs, runProfiled } from '../helpers/cli.js';

const py = (name: string) => join(fixtures, 'python', name);

describe('highwater run modes', () => {
  it('runs -m module with its arguments', async () => {
    const r = await runProfiled(['-m', 'pkg.cli', '12', '--flag'], {
      env: { PYTHONPATH: join(fixtures, 'python') },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("args ['12', '--flag']");
    const rep = onlyReport(r.outDir);
    expectNear(bytesAtLine(rep, 'cli.py', lineOf(py('pkg/cli.py'), 'module line')), 12 * MiB, 0.08);
  });

  it('passes stdin, stdout, stderr and the exit code through untouched', async () => {
    const r = await runProfiled([py('passthrough.py'), '7', 'x y'], { stdin: 'hello\n' });
    expect(r.code).toBe(7);
    expect(r.stdout).toBe('stdout:HELLO\n');
    expect(r.stderr).toContain("stderr:['7', 'x y']");
    // highwater's own lines carry its prefix; the program's do not.
    for (const line of r.stderr.split('\n').filter((l) => l && !l.startsWith('stderr:'))) {
      expect(line.startsWith('highwater: ')).toBe(true);
    }
  });

  it('writes the report when the program raises SystemExit(3)', async () => {
    const r = await runProfiled([py('raises.py')]);
    expect(r.code).toBe(3);
    expectNear(bytesAtLine(onlyReport(r.outDir), 'raises.py', lineOf(py('raises.py'), 'raises line')), 60 * MiB);
  });

  it('on SIGTERM writes the peak so far and exits 128+15', async () => {
    let sent = false;
    const r = await runProfiled([py('sleeper.py')], {
      onStdout: (text, child) => {
        if (!sent && text.includes('ready')) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(sent).toBe(true);
    expect(r.code).toBe(143);
    const rep = onlyReport(r.outDir);
    expectNear(bytesAtLine(rep, 'sleeper.py', lineOf(py('sleeper.py'), 'sleeper line')), 45 * MiB);
  });

  it('gives a missing script the error and exit code Python gives', async () => {
    const r = await runProfiled([join(fixtures, 'python', 'no-such-script.py')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/can't open file .*no-such-script\.py.*No such file or directory/);
    expect(reportDirs(r.outDir)).toEqual([]);
  });

  it('runs a non-Python command untouched, says so once, writes no report', async () => {
    const r = await runProfiled(['--', 'sh', '-c', 'echo plain; exit 4']);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('plain\n');
    const notes = r.stderr.split('\n').filter((l) => l.startsWith('highwater: '));
    expect(notes).toHaveLength(1);
    expect(notes[0]).toMatch(/nothing was profiled/);
    expect(reportDirs(r.outDir)).toEqual([]);
  });

  it('follows a shell entrypoint that execs python', async () => {
    const r = await runProfiled(['--', 'sh', '-c', `exec python3 ${py('raises.py')}`]);
    expect(r.code).toBe(3);
    expectNear(bytesAtLine(onlyReport(r.outDir), 'raises.py', lineOf(py('raises.py'), 'raises line')), 60 * MiB);
  });
});
