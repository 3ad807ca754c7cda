// highwater-init with real processes: exit codes, signals, reaping, environment.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildInit, childrenOf, cleanEnv, hasPython, makeFakeBundle, processes, run, sleep, start, type FakeBundle } from './init-helpers.js';

let init: string;
let bundle: FakeBundle;
let runDir: string;
let baseEnv: Record<string, string>;

beforeAll(() => {
  init = buildInit();
  bundle = makeFakeBundle();
  runDir = join(mkdtempSync(join(tmpdir(), 'hw-init-')), 'run');
  baseEnv = cleanEnv({ HIGHWATER_HOME: bundle.home, HIGHWATER_RUN_DIR: runDir });
});

const python = hasPython();

/** A Python child that reports each forwarded signal, then exits 40 + signal number. */
const TRAP_PY = `
import os, signal, sys, time
def on(sig, frame):
    print("got", signal.Signals(sig).name, flush=True)
    sys.exit(40 + sig)
for s in (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
    signal.signal(s, on)
print("ready", os.getpid(), flush=True)
time.sleep(30)
sys.exit(99)
`;

describe('exit status', () => {
  it.each([0, 3, 53])('passes exit code %i through', async (code) => {
    const r = await run(init, ['--', 'sh', '-c', `exit ${code}`], baseEnv);
    expect(r.code).toBe(code);
  });

  it('works without the -- separator', async () => {
    const r = await run(init, ['sh', '-c', 'exit 7'], baseEnv);
    expect(r.code).toBe(7);
  });

  it.each([
    ['KILL', 9],
    ['TERM', 15],
    ['SEGV', 11],
  ])('exits 128+N when SIG%s kills the command', async (name, n) => {
    const r = await run(init, ['--', 'sh', '-c', `kill -${name} $$`], baseEnv);
    expect(r.code).toBe(128 + n);
  });

  it('reports a command that does not exist like a shell: 127', async () => {
    const r = await run(init, ['--', 'no-such-command-hw'], baseEnv);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('highwater-init: cannot run no-such-command-hw: No such file or directory');
  });

  it('reports a command that cannot be executed: 126', async () => {
    const file = join(bundle.home, 'not-executable');
    writeFileSync(file, 'echo hi\n', { mode: 0o644 });
    const r = await run(init, ['--', file], baseEnv);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain(`highwater-init: cannot run ${file}: Permission denied`);
  });

  it('is a usage error without a command', async () => {
    const r = await run(init, ['--'], baseEnv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: highwater-init');
  });
});

describe.skipIf(!python)('signal forwarding', () => {
  it.each([
    ['SIGTERM', 15],
    ['SIGUSR2', 12],
    ['SIGINT', 2],
    ['SIGHUP', 1],
    ['SIGQUIT', 3],
  ] as const)('forwards %s to the command', async (name, n) => {
    const p = start(init, ['--', 'python3', '-c', TRAP_PY], baseEnv);
    await p.waitFor('ready');
    p.child.kill(name);
    const r = await p.done;
    expect(r.stdout).toContain(`got ${name}`);
    expect(r.code).toBe(40 + n);
  });

  it('forwards signals to a shell script that traps them', async () => {
    const script = 'trap "echo got TERM; exit 21" TERM; echo ready; sleep 30 >/dev/null 2>&1 & wait $!';
    const p = start(init, ['--', 'sh', '-c', script], baseEnv);
    await p.waitFor('ready');
    p.child.kill('SIGTERM');
    const r = await p.done;
    expect(r.stdout).toContain('got TERM');
    expect(r.code).toBe(21);
  });
});

describe('zombie reaping and subreaper', () => {
  it('adopts orphaned grandchildren and reaps them', async () => {
    // Each ( ... & ) subshell exits at once, orphaning its sleep.
    const script = '(sleep 0.5 &); (sleep 0.5 &); (sleep 0.5 &); (sleep 3 >/dev/null 2>&1 &); echo spawned; sleep 2; exit 5';
    const p = start(init, ['--', 'sh', '-c', script], baseEnv);
    await p.waitFor('spawned');
    const initPid = p.child.pid!;
    await sleep(150);
    // Subreaper: the orphans are the init's children now, not the host init's.
    const adopted = childrenOf(initPid).filter((c) => c.comm === 'sleep');
    expect(adopted.length).toBeGreaterThanOrEqual(3);
    await sleep(1200);
    // The short sleeps have ended; none may be left as a zombie.
    const kids = childrenOf(initPid);
    expect(kids.filter((k) => k.state === 'Z')).toEqual([]);
    const r = await p.done;
    expect(r.code).toBe(5);
    // The long orphan outlives the command; the init still exits with the command's code.
    expect(processes().filter((x) => x.ppid === initPid && x.state === 'Z')).toEqual([]);
  });
});

describe('environment', () => {
  const show =
    'for v in LD_PRELOAD HIGHWATER_ORIG_LD_PRELOAD PYTHONPATH HIGHWATER_RUN_DIR OMP_NUM_THREADS OPENBLAS_NUM_THREADS MKL_NUM_THREADS NUMEXPR_NUM_THREADS NUMEXPR_MAX_THREADS BLOSC_NTHREADS VECLIB_MAXIMUM_THREADS; do eval "echo $v=\\${$v-UNSET}"; done';
  const parse = (s: string) =>
    Object.fromEntries(
      s
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );

  it('sets LD_PRELOAD, PYTHONPATH and the run dir, and leaves thread pools alone', async () => {
    const r = await run(init, ['--', 'sh', '-c', show], baseEnv);
    expect(r.code).toBe(0);
    const env = parse(r.stdout);
    expect(env.LD_PRELOAD).toBe(bundle.shim);
    expect(env.HIGHWATER_ORIG_LD_PRELOAD).toBe('');
    expect(env.PYTHONPATH).toBe(`${bundle.home}/python/bootstrap:${bundle.home}/python`);
    expect(env.HIGHWATER_RUN_DIR).toBe(runDir);
    // In a container highwater must not change the job's parallelism.
    for (const v of [
      'OMP_NUM_THREADS',
      'OPENBLAS_NUM_THREADS',
      'MKL_NUM_THREADS',
      'NUMEXPR_NUM_THREADS',
      'NUMEXPR_MAX_THREADS',
      'BLOSC_NTHREADS',
      'VECLIB_MAXIMUM_THREADS',
    ])
      expect(env[v]).toBe('UNSET');
    expect(statSync(runDir).isDirectory()).toBe(true);
    expect(statSync(runDir).mode & 0o777).toBe(0o700);
  });

  it('HIGHWATER_LIMIT_THREADS=1 lowers the pool defaults to 1, never caps them, keeps user settings', async () => {
    const r = await run(init, ['--', 'sh', '-c', show], { ...baseEnv, HIGHWATER_LIMIT_THREADS: '1', OMP_NUM_THREADS: '4' });
    const env = parse(r.stdout);
    for (const v of ['OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS', 'BLOSC_NTHREADS']) expect(env[v]).toBe('1');
    expect(env.OMP_NUM_THREADS).toBe('4');
    expect(env.NUMEXPR_MAX_THREADS).toBe('UNSET');
    expect(env.VECLIB_MAXIMUM_THREADS).toBe('UNSET');
  });

  it('passes HIGHWATER_SAMPLE_RATE through to the command as it is', async () => {
    const r = await run(init, ['--', 'sh', '-c', 'echo "rate=$HIGHWATER_SAMPLE_RATE"'], { ...baseEnv, HIGHWATER_SAMPLE_RATE: '256KiB' });
    expect(r.stdout.trim()).toBe('rate=256KiB');
  });

  it('prepends to an existing LD_PRELOAD and PYTHONPATH and keeps user thread settings', async () => {
    const r = await run(init, ['--', 'sh', '-c', show], {
      ...baseEnv,
      LD_PRELOAD: bundle.otherLib,
      PYTHONPATH: '/user/lib',
      OMP_NUM_THREADS: '4',
    });
    const env = parse(r.stdout);
    expect(env.LD_PRELOAD).toBe(`${bundle.shim}:${bundle.otherLib}`);
    expect(env.HIGHWATER_ORIG_LD_PRELOAD).toBe(bundle.otherLib);
    expect(env.PYTHONPATH).toBe(`${bundle.home}/python/bootstrap:${bundle.home}/python:/user/lib`);
    expect(env.OMP_NUM_THREADS).toBe('4');
    expect(env.MKL_NUM_THREADS).toBe('UNSET');
  });

  it('does not inject twice when nested', async () => {
    const r = await run(init, ['--', init, '--', 'sh', '-c', show], baseEnv);
    const env = parse(r.stdout);
    expect(env.LD_PRELOAD).toBe(bundle.shim);
    expect(env.PYTHONPATH).toBe(`${bundle.home}/python/bootstrap:${bundle.home}/python`);
  });

  it('defaults the run dir to /tmp/highwater-run', async () => {
    const env0 = { ...baseEnv };
    delete env0.HIGHWATER_RUN_DIR;
    const r = await run(init, ['--', 'sh', '-c', 'echo $HIGHWATER_RUN_DIR'], env0);
    expect(r.stdout.trim()).toBe('/tmp/highwater-run');
    expect(existsSync('/tmp/highwater-run')).toBe(true);
  });

  it('finds the bundle above its own bin/ directory without HIGHWATER_HOME', async () => {
    const env0 = { ...baseEnv };
    delete env0.HIGHWATER_HOME;
    const r = await run(init, ['--', 'sh', '-c', 'echo $PYTHONPATH'], env0);
    const native = join(init, '../..');
    expect(r.stdout.trim()).toBe(`${native}/python/bootstrap:${native}/python`);
  });

  it('HIGHWATER_DISABLE=1 execs the command untouched, in place', async () => {
    const p = start(init, ['--', 'sh', '-c', 'echo pid=$$; ' + show], { ...baseEnv, HIGHWATER_DISABLE: '1' });
    const r = await p.done;
    expect(r.code).toBe(0);
    const env = parse(r.stdout);
    expect(env.pid).toBe(String(p.child.pid));
    expect(env.LD_PRELOAD).toBe('UNSET');
    expect(env.PYTHONPATH).toBe('UNSET');
    expect(env.OMP_NUM_THREADS).toBe('UNSET');
  });

  it.skipIf(!python)('a shell entrypoint that execs python sees the environment and loads the bootstrap', async () => {
    const entry = join(bundle.home, 'entrypoint.sh');
    writeFileSync(
      entry,
      '#!/bin/sh\nset -e\necho "entrypoint $$"\nexec python3 -c \'import os; print("py", os.getpid(), os.environ["LD_PRELOAD"], os.environ.get("HW_TEST_BOOTSTRAP_LOADED"), os.environ.get("OMP_NUM_THREADS", "unset"))\'\n',
      { mode: 0o755 },
    );
    const r = await run(init, ['--', entry], baseEnv);
    expect(r.code).toBe(0);
    const shPid = /entrypoint (\d+)/.exec(r.stdout)![1];
    expect(r.stdout).toContain(`py ${shPid} ${bundle.shim} 1 unset`);
  });
});

describe('single-container watcher', () => {
  it('starts `watch` with the run dir and output, without the shim, and stops it after the command', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'hw-watch-')), 'watch.log');
    const wb = makeFakeBundle({
      watcher: `echo "argv $*" >> ${log}; echo "preload=\${LD_PRELOAD-UNSET}" >> ${log}; trap 'echo term >> ${log}; exit 0' TERM; echo started >> ${log}; sleep 30 >/dev/null 2>&1 & wait $!`,
    });
    const env = cleanEnv({ HIGHWATER_HOME: wb.home, HIGHWATER_RUN_DIR: runDir, HIGHWATER_WATCH: '1', HIGHWATER_OUTPUT: '/out/reports' });
    const r = await run(init, ['--', 'sh', '-c', 'sleep 0.5; exit 53'], env);
    expect(r.code).toBe(53);
    const text = readFileSync(log, 'utf8');
    expect(text).toContain(`argv ${wb.home}/dist/cli/main.js watch --run-dir ${runDir} --output /out/reports`);
    expect(text).toContain('preload=UNSET');
    expect(text).toContain('term');
  });

  it('a watcher that fails or hangs never changes the exit status', async () => {
    const failing = makeFakeBundle({ watcher: 'exit 1' });
    let r = await run(
      init,
      ['--', 'sh', '-c', 'sleep 0.3; exit 3'],
      cleanEnv({ HIGHWATER_HOME: failing.home, HIGHWATER_RUN_DIR: runDir, HIGHWATER_WATCH: '1' }),
    );
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('watcher ended');

    const hanging = makeFakeBundle({ watcher: "trap '' TERM; exec sleep 60" });
    const t0 = Date.now();
    r = await run(
      init,
      ['--', 'sh', '-c', 'exit 0'],
      cleanEnv({ HIGHWATER_HOME: hanging.home, HIGHWATER_RUN_DIR: runDir, HIGHWATER_WATCH: '1', HIGHWATER_WATCH_GRACE: '1' }),
    );
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.stderr).toContain('killing it');
  });

  it('runs without a watcher when the bundle has none', async () => {
    const r = await run(init, ['--', 'sh', '-c', 'exit 4'], { ...baseEnv, HIGHWATER_WATCH: '1' });
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('has no watcher');
  });
});

function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!canUnshare())('as PID 1 of a new PID namespace (unshare)', () => {
  const ns = (args: string[]) => ['--pid', '--fork', '--mount-proc', init, '--', ...args];

  it('is PID 1 and passes exit code 53 through', async () => {
    const r = await run('unshare', ns(['sh', '-c', 'echo "init=$(cat /proc/1/comm) ppid=$PPID"; exit 53']), baseEnv);
    expect(r.stdout).toContain('init=highwater-init ppid=1');
    expect(r.code).toBe(53);
  });

  it('handles SIGTERM sent to PID 1 from inside the namespace', async () => {
    const script = 'trap "echo got TERM; exit 17" TERM; kill -TERM 1; sleep 10 >/dev/null 2>&1 & wait $!';
    const r = await run('unshare', ns(['sh', '-c', script]), baseEnv);
    expect(r.stdout).toContain('got TERM');
    expect(r.code).toBe(17);
  });

  it.skipIf(!python)('forwards SIGTERM from outside (like docker stop) and reaps orphans', async () => {
    const script = "(sleep 0.3 &); (sleep 0.3 &); exec python3 -c '" + TRAP_PY.replace(/'/g, "'\\''") + "'";
    const p = start('unshare', ns(['sh', '-c', script]), baseEnv);
    await p.waitFor('ready');
    const initHostPid = childrenOf(p.child.pid!).find((c) => c.comm === 'highwater-init')!.pid;
    await sleep(800);
    expect(childrenOf(initHostPid).filter((c) => c.state === 'Z')).toEqual([]);
    process.kill(initHostPid, 'SIGTERM');
    const r = await p.done;
    expect(r.stdout).toContain('got SIGTERM');
    expect(r.code).toBe(40 + 15);
  });
});
