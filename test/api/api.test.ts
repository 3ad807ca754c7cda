// highwater.api.profile() in real scripts under `highwater python`, and
// `python -m highwater` as an alias of the CLI.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, bytesAtLine, cliPath, expectNear, fixtures, freshDir, lineOf, readReport, repoRoot, reportDirs, runCli } from '../helpers/cli.js';

const api = (name: string) => join(fixtures, 'api', name);
const pythonPackage = join(repoRoot, 'native', 'python');

/** `highwater python -o <fresh> --no-browser <script> args...` */
async function underPython(script: string, args: string[]) {
  const cliOut = freshDir('hw-cli-out-');
  const r = await runCli(['python', '-o', cliOut, '--no-browser', api(script), ...args]);
  return { ...r, cliOut };
}

describe('highwater.api.profile()', () => {
  it('tracks only the call, writes the whole report into the given directory, returns the result', async () => {
    const out = join(freshDir(), 'result');
    const r = await underPython('inside_outside.py', [out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`result ${30 * MiB + 1}`);
    // The directory itself, no timestamped sub-directory.
    expect(readdirSync(out).sort()).toEqual(['index.html', 'peak-memory-reversed.svg', 'peak-memory.folded', 'peak-memory.svg', 'report.json']);
    const rep = readReport(out);
    expect(rep.trigger).toBe('api');
    const script = api('inside_outside.py');
    expectNear(bytesAtLine(rep, 'inside_outside.py', lineOf(script, 'inside line')), 30 * MiB);
    expect(bytesAtLine(rep, 'inside_outside.py', lineOf(script, 'outside line'))).toBe(0);
    expect(bytesAtLine(rep, 'inside_outside.py', lineOf(script, 'after line'))).toBe(0);
    // 20 MiB before and 25 MiB after the call are not in the peak.
    expectNear(rep.peakBytes, 30 * MiB, 0.05);
    const inside = rep.stacks.find((s) => s.frames.at(-1)?.line === lineOf(script, 'inside line'));
    expect(inside?.frames.at(-1)?.code).toBe('inside = bytearray(30 * MiB)  # inside line');
    // `highwater python` itself writes no report: tracking was off outside profile().
    expect(reportDirs(r.cliOut)).toEqual([]);
  });

  it('covers the Python processes started inside the call (subprocess, spawn executor), not those before or after', async () => {
    const out = join(freshDir(), 'result');
    const r = await underPython('children.py', [out]);
    expect(r.code, r.stderr).toBe(0);
    const said = (k: string) => (new RegExp(`^${k} (.*)$`, 'm').exec(r.stdout)?.[1] ?? '').split(' ').filter(Boolean).map(Number);
    const [before] = said('before');
    const [inside] = said('inside');
    const [after] = said('after');
    const workers = said('workers');
    expect(workers.length).toBeGreaterThanOrEqual(1);
    expect(r.stdout).toContain('env None'); // the call's variable is gone from the program's environment after it
    const rep = readReport(out);
    expect(rep.trigger).toBe('api');
    const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
    expect(procs.has(before!)).toBe(false);
    expect(procs.has(after!)).toBe(false);
    expect(rep.process.pid).not.toBe(inside);
    // Each child's own peak, at its own line (in its own file).
    const atLine = (pid: number, file: string, line: number) =>
      rep.stacks
        .filter((s) => s.frames[0]?.pid === pid && s.frames.at(-1)?.file.endsWith(file) && s.frames.at(-1)?.line === line)
        .reduce((n, s) => n + s.bytes, 0);
    expect(procs.get(inside!)!.label).toBe('python3 child_alloc.py 23');
    expectNear(atLine(inside!, 'child_alloc.py', lineOf(api('child_alloc.py'), 'child line')), 23 * MiB);
    for (const w of workers) {
      expect(procs.get(w)!.label).toMatch(/^worker \d+ \(multiprocessing spawn\)$/);
      expectNear(atLine(w, 'children.py', lineOf(api('children.py'), 'worker line')), 17 * MiB);
    }
    // The processes' own reports beside it; `highwater python` itself writes none.
    expect(existsSync(join(out, procs.get(inside!)!.report!))).toBe(true);
    expect(reportDirs(r.cliOut)).toEqual([]);
  });

  // forkserver: the server outlives the call; its workers are the call's through it.
  it.each(['fork', 'spawn', 'forkserver'])(
    'covers a %s Pool whose workers end through os._exit or terminate() (their state files), not a fork child from before the call',
    async (method) => {
      const out = join(freshDir(), 'result');
      const r = await underPython('fork_pool.py', [out, method]);
      expect(r.code, r.stderr).toBe(0);
      const [before] = (/^before (\d+)$/m.exec(r.stdout) ?? []).slice(1).map(Number);
      const [parent] = (/^parent (\d+)$/m.exec(r.stdout) ?? []).slice(1).map(Number);
      const workers = [...r.stdout.matchAll(/^worker (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), mib: Number(m[2]) }));
      expect(new Set(workers.map((w) => w.pid)).size).toBe(3);
      const rep = readReport(out);
      expect(rep.trigger).toBe('api');
      const procs = new Map(rep.processes!.map((p) => [p.pid, p]));
      expect(rep.process.pid).toBe(parent);
      expect(procs.has(before!)).toBe(false);
      const script = api('fork_pool.py');
      const atLine = (pid: number, line: number) =>
        rep.stacks
          .filter((s) => s.frames[0]?.pid === pid && s.frames.at(-1)?.file.endsWith('fork_pool.py') && s.frames.at(-1)?.line === line)
          .reduce((n, s) => n + s.bytes, 0);
      expectNear(atLine(parent!, lineOf(script, 'parent line')), 10 * MiB);
      for (const w of workers) {
        expect(procs.get(w.pid)!.label).toMatch(
          method === 'spawn' ? /^worker \d+ \(multiprocessing spawn\)$/ : /^worker \d+ \((fork|multiprocessing forkserver)\)$/,
        );
        expectNear(atLine(w.pid, lineOf(script, 'worker line')), w.mib * MiB);
      }
      // Nothing of the child from before the call, in any process.
      expect(rep.stacks.some((s) => s.frames.at(-1)?.line === lineOf(script, 'before line'))).toBe(false);
      // The watcher made no post-mortem of the workers: the call's report tells their story.
      expect(reportDirs(r.cliOut)).toEqual([]);
    },
  );

  it('takes only the children of the call: one still running at its end stays out, and out of the next call too', async () => {
    const dir = freshDir();
    const [first, second] = [join(dir, 'first'), join(dir, 'second')];
    const r = await underPython('fork_calls.py', [first, second]);
    expect(r.code, r.stderr).toBe(0);
    const said = (k: string) => (new RegExp(`^${k}(.*)$`, 'm').exec(r.stdout)?.[1] ?? '').split(' ').filter(Boolean).map(Number);
    const [straggler] = said('straggler');
    const [victim] = said('victim');
    const script = api('fork_calls.py');
    const one = readReport(first);
    const two = readReport(second);
    // The first call's child was still running when it returned: not in its report.
    expect((one.processes ?? []).map((p) => p.pid)).not.toContain(straggler);
    expect(bytesAtLine(one, 'fork_calls.py', lineOf(script, 'straggler line'))).toBe(0);
    expectNear(bytesAtLine(one, 'fork_calls.py', lineOf(script, 'first line')), 3 * MiB);
    // It ended inside the second call, which did not start it: not there either.
    expect(two.processes!.map((p) => p.pid)).not.toContain(straggler);
    expect(bytesAtLine(two, 'fork_calls.py', lineOf(script, 'straggler line'))).toBe(0);
    // The second call's own child, ended by SIGTERM: its bytes at its line.
    expect(two.processes!.find((p) => p.pid === victim)?.state).toBe('killed');
    expectNear(bytesAtLine(two, 'fork_calls.py', lineOf(script, 'terminated line')), 5 * MiB);
    expectNear(bytesAtLine(two, 'fork_calls.py', lineOf(script, 'second line')), 4 * MiB);
    // The call removed the state file it took.
    expect(r.stdout).toMatch(/^left$/m);
    expect(reportDirs(r.cliOut)).toEqual([]);
  });

  it('lets the exception propagate and still writes the report', async () => {
    const out = join(freshDir(), 'result');
    const r = await underPython('raises.py', [out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ValueError: boom after ${40 * MiB} bytes`);
    expect(r.stdout).not.toContain('not reached');
    const rep = readReport(out);
    expect(rep.trigger).toBe('api');
    expectNear(bytesAtLine(rep, 'raises.py', lineOf(api('raises.py'), 'raises line')), 40 * MiB);
  });

  it('refuses a nested call clearly; calls in a row give separate reports with their own peaks', async () => {
    const dir = freshDir();
    const [first, second, nested] = ['first', 'second', 'nested'].map((n) => join(dir, n)) as [string, string, string];
    const r = await underPython('nested.py', [first, second, nested]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/nested: highwater\.api\.profile\(\) is already running: nested or concurrent calls are not supported/);
    expect(r.stdout).toContain('is RuntimeError True');
    expect(existsSync(nested)).toBe(false);
    const script = api('nested.py');
    const a = readReport(first);
    const b = readReport(second);
    expectNear(bytesAtLine(a, 'nested.py', lineOf(script, 'first line')), 30 * MiB);
    expectNear(bytesAtLine(b, 'nested.py', lineOf(script, 'second line')), 10 * MiB);
    // The second call starts from a fresh peak: the first call's 30 MiB are not in it.
    expect(bytesAtLine(b, 'nested.py', lineOf(script, 'first line'))).toBe(0);
    expectNear(b.peakBytes, 10 * MiB, 0.05);
  });

  it('under plain python: import works, profile() raises RuntimeError saying to use `highwater python`', () => {
    const out = join(freshDir(), 'result');
    const r = spawnSync('python3', [api('plain.py'), out], {
      env: { ...process.env, PYTHONPATH: pythonPackage, LD_PRELOAD: '', HIGHWATER_RUN_DIR: '' },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^RuntimeError: .*the highwater shim, which is not loaded.*`highwater python yourscript\.py`/m);
    expect(existsSync(out)).toBe(false);
  });

  it('raises RuntimeError in a forked child; the parent still profiles', async () => {
    const dir = freshDir();
    const r = await underPython('forked.py', [join(dir, 'child'), join(dir, 'parent')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/child RuntimeError: highwater\.api\.profile\(\) cannot run in a forked child process/);
    expect(existsSync(join(dir, 'child'))).toBe(false);
    expectNear(bytesAtLine(readReport(join(dir, 'parent')), 'forked.py', lineOf(api('forked.py'), 'parent line')), 15 * MiB);
  });

  it('gives a thread started inside profile() its own stack, and restores the thread hook', async () => {
    const out = join(freshDir(), 'result');
    const r = await underPython('threads.py', [out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('hook restored True');
    const rep = readReport(out);
    const line = lineOf(api('threads.py'), 'thread line');
    expectNear(bytesAtLine(rep, 'threads.py', line), 35 * MiB);
    const stack = rep.stacks.find((s) => s.frames.at(-1)?.line === line && s.frames.at(-1)?.file.endsWith('threads.py'));
    expect(stack?.frames.at(-1)?.function).toMatch(/in_thread$/);
  });

  it('limits thread pools to one thread inside and restores them after, also after an exception (FAKE numexpr and threadpoolctl)', async () => {
    const out = join(freshDir(), 'result');
    const r = await underPython('threadpools.py', [out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'before numexpr=6 blas=8',
      'inside numexpr=1 blas=1',
      'after numexpr=6 blas=8',
      'raised inside: numexpr=1 blas=1',
      'after raise numexpr=6 blas=8',
      '',
    ]);
    expect(readReport(out).trigger).toBe('api');
  });
});

describe('python -m highwater', () => {
  it('runs the CLI: `python -m highwater run script.py` profiles the script', () => {
    const out = freshDir('hw-out-');
    const script = api('cli_alias.py');
    const r = spawnSync('python3', ['-m', 'highwater', 'run', '-o', out, '--no-browser', script, 'x', '--flag'], {
      env: { ...process.env, PYTHONPATH: pythonPackage, HIGHWATER_CLI: cliPath, HIGHWATER_NODE: process.execPath, DISPLAY: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("alias ran with ['x', '--flag']");
    const dirs = reportDirs(out);
    expect(dirs).toHaveLength(1);
    const rep = readReport(dirs[0]!);
    expect(rep.trigger).toBe('exit');
    expectNear(bytesAtLine(rep, 'cli_alias.py', lineOf(script, 'alias line')), 22 * MiB);
  });

  /** PATH holding only python3 (and node when asked): nothing else can be found by accident. */
  function onlyOnPath(withNode: boolean): string {
    const bin = freshDir('hw-path-');
    symlinkSync('/usr/bin/python3', join(bin, 'python3'));
    if (withNode) symlinkSync(process.execPath, join(bin, 'node'));
    return bin;
  }

  function aliasRun(pythonPath: string, pathDir: string) {
    const out = freshDir('hw-out-');
    const script = api('cli_alias_env.py');
    const r = spawnSync('python3', ['-m', 'highwater', 'run', '-o', out, '--no-browser', script], {
      env: { PATH: pathDir, PYTHONPATH: pythonPath, HOME: freshDir(), DISPLAY: '' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const dirs = reportDirs(out);
    expect(dirs).toHaveLength(1);
    expectNear(bytesAtLine(readReport(dirs[0]!), 'cli_alias_env.py', lineOf(script, 'alias line')), 22 * MiB);
    return r.stdout;
  }

  it('finds the repository CLI next to the package without HIGHWATER_CLI', () => {
    const stdout = aliasRun(pythonPackage, onlyOnPath(true));
    expect(stdout).toContain(`preload ${join(repoRoot, 'native', 'build', 'libhighwater.so')}`);
    expect(stdout).toContain(`cli ${cliPath}`);
    expect(stdout).toContain('python True');
  });

  it('finds the bundled CLI and Node in a bundle laid out as the Dockerfile lays out /opt/highwater', () => {
    // /opt/highwater of the bundle-full image: bin/, lib/, python/, node/, dist/, node_modules, package.json.
    const b = join(freshDir('hw-bundle-'), 'highwater');
    mkdirSync(join(b, 'lib'), { recursive: true });
    mkdirSync(join(b, 'python'));
    mkdirSync(join(b, 'node', 'bin'), { recursive: true });
    copyFileSync(join(repoRoot, 'native', 'build', 'libhighwater.so'), join(b, 'lib', 'libhighwater.so'));
    cpSync(join(pythonPackage, 'bootstrap'), join(b, 'python', 'bootstrap'), { recursive: true });
    cpSync(join(pythonPackage, 'highwater'), join(b, 'python', 'highwater'), { recursive: true });
    symlinkSync(process.execPath, join(b, 'node', 'bin', 'node'));
    cpSync(join(repoRoot, 'dist'), join(b, 'dist'), { recursive: true });
    symlinkSync(realpathSync(join(repoRoot, 'node_modules')), join(b, 'node_modules'));
    copyFileSync(join(repoRoot, 'package.json'), join(b, 'package.json'));
    // No node on PATH: only the bundle's own Node can run the CLI.
    const stdout = aliasRun(join(b, 'python'), onlyOnPath(false));
    expect(stdout).toContain(`preload ${join(b, 'lib', 'libhighwater.so')}`);
    expect(stdout).toContain(`cli ${join(b, 'dist', 'cli', 'main.js')}`);
    expect(stdout).toContain('python True');
  });

  it('says how to install the CLI when it cannot find one (exit 2)', () => {
    // A copy of the package away from the repository, no HIGHWATER_CLI, no highwater on PATH.
    const dir = freshDir();
    spawnSync('cp', ['-r', join(pythonPackage, 'highwater'), dir]);
    const r = spawnSync('python3', ['-m', 'highwater', 'run', 'x.py'], {
      env: { PATH: '/usr/bin:/bin', PYTHONPATH: dir, HOME: dir },
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('highwater: the highwater CLI is not installed here');
  });
});
