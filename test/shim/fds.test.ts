// The shim never uses a file descriptor the program has taken back: a
// program that closes every fd, reuses the numbers or dup2s over them gets
// its own files, sockets and signals exactly as without highwater.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixtures, freshDir, readReport, reportDirs, runProfiled } from '../helpers/cli.js';
import { sendControl } from '../../sidecar/src/watcher/control.js';
import { shimmedPython } from './shimmed.js';

const py = (name: string) => join(fixtures, 'python', name);

describe('file descriptors the program closes or reuses', () => {
  it('closerange(3, 65536), six files and one SIGUSR2: files untouched, one signal report, no CPU burnt', async () => {
    const cwd = freshDir('hw-fds-');
    const r = await runProfiled(['--', 'python3', py('closerange.py')], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('done');
    // Every file holds exactly what the program wrote, byte for byte.
    for (let i = 0; i < 6; i++) {
      expect(readFileSync(join(cwd, `cf${i}`), 'latin1')).toBe(`program file ${i}\nsecond write ${i}\n`);
    }
    expect(readdirSync(cwd).sort()).toEqual(['cf0', 'cf1', 'cf2', 'cf3', 'cf4', 'cf5']);
    // One SIGUSR2 = one report; plus the one at exit.
    const dirs = reportDirs(r.outDir);
    expect(dirs.map((d) => readReport(d).trigger)).toEqual(['signal', 'exit']);
    // Asleep means asleep: no poll loop spinning on a reused fd.
    const cpu = Number(/cpu asleep ([\d.]+)/.exec(r.stdout)![1]);
    expect(cpu).toBeLessThan(0.1);
  });

  it('a server dup2-ed onto the control socket fd number gets every client', async () => {
    const cwd = freshDir('hw-fds-');
    const r = await runProfiled(['--', 'python3', py('reused_listen.py')], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/listening on fd (\d+) \(shim had \[\1\]\)/);
    expect(r.stdout).toContain('got 5 of 5: hello 0, hello 1, hello 2, hello 3, hello 4');
    expect(reportDirs(r.outDir).map((d) => readReport(d).trigger)).toEqual(['exit']);
  });

  it('a control socket lost to the program, or removed from the run dir, comes back at the same path', async () => {
    const runDir = freshDir('hw-run-');
    const p = shimmedPython(runDir, [
      '-c',
      [
        'import os, sys, time',
        'sys.stdout.write("ready\\n"); sys.stdout.flush()',
        'sys.stdin.readline()',
        'os.closerange(3, 65536)',
        'f = [open(os.devnull) for _ in range(8)]',
        'sys.stdout.write("closed\\n"); sys.stdout.flush()',
        'sys.stdin.readline()',
      ].join('\n'),
    ]);
    try {
      await p.waitFor('ready');
      const sock = join(runDir, `hw-${p.pid}.sock`);
      expect(await sendControl(sock, 'ping')).toBe(`ok highwater 1 ${p.pid}`);
      rmSync(sock);
      await sleep(1600); // one status period plus the re-bind period
      expect(existsSync(sock)).toBe(true);
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      expect(await sendControl(sock, 'ping')).toBe(`ok highwater 1 ${p.pid}`);
      p.send('\n');
      await p.waitFor('closed');
      await sleep(1600);
      expect(await sendControl(sock, 'ping')).toBe(`ok highwater 1 ${p.pid}`);
      p.send('\n');
      expect(await p.exit).toBe(0);
    } finally {
      p.kill();
    }
  });

  it('the fd numbers the program gets are the ones it gets without highwater, at the usual fd limit and at 64', async () => {
    // The shim's long-lived fds (the control socket, the wake pipe) held 3, 4
    // and 5: the program's first open returned 6 under highwater, 3 without.
    const code = [
      'import json, os, socket',
      'a = os.open(os.devnull, os.O_RDONLY)',
      'r, w = os.pipe()',
      's = socket.socket(socket.AF_UNIX)',
      'f = open(os.devnull)',
      'print(json.dumps([a, r, w, s.fileno(), os.dup(a), f.fileno()]))',
    ].join('\n');
    const limited = ['sh', '-c', 'ulimit -n 64 && exec python3 -c "$0"', code];
    for (const argv of [['python3', '-c', code], limited]) {
      const plain = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
      expect(plain.status, plain.stderr).toBe(0);
      expect((JSON.parse(plain.stdout) as number[])[0]).toBe(3); // nothing else open in the plain run
      const r = await runProfiled(['--', ...argv]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout, argv.join(' ')).toBe(plain.stdout);
      expect(reportDirs(r.outDir).map((d) => readReport(d).trigger)).toEqual(['exit']);
    }
  });

  it("a program's own SIGUSR2 handler wins, and a forked child dies of SIGUSR2 as it would", async () => {
    const script = py('own_sigusr2.py');
    const plainOut = spawnSync('python3', [script], { encoding: 'utf8' }).stdout;
    expect(plainOut).toBe('child killed by 12\nown handler ran 1\n');
    const r = await runProfiled(['--', 'python3', script]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(plainOut);
    // The forked child is tracked too (issue 12): every report is an exit report.
    expect(new Set(reportDirs(r.outDir).map((d) => readReport(d).trigger))).toEqual(new Set(['exit']));
  });
});
