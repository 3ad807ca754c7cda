// highwater-init on a libc the shim cannot serve (musl, e.g. Alpine). No
// Alpine image can be had here (no registry), so:
// - a FAKE musl root: a fixture tree with /lib/ld-musl-x86_64.so.1 and no glibc
//   loader, pointed at with HIGHWATER_LIBC_ROOT (a test-only knob), for
//   commands that are scripts;
// - a real ELF program linked with a musl program interpreter
//   (-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1): the init reads its
//   PT_INTERP on the real root. It cannot run here (no musl loader), so the
//   exec fails with 127 after the init has said so and left LD_PRELOAD alone.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildInit, cleanEnv, makeFakeBundle, repoRoot, run, type FakeBundle } from './init-helpers.js';

let init: string;
let bundle: FakeBundle;
let env: Record<string, string>;
const SHOW = 'printf "LD_PRELOAD=[%s] PYTHONPATH=[%s]\\n" "$LD_PRELOAD" "$PYTHONPATH"';

function fakeRoot(loaders: string[]): string {
  const root = mkdtempSync(join(tmpdir(), 'hw-libc-root-'));
  for (const l of loaders) {
    mkdirSync(join(root, l, '..'), { recursive: true });
    writeFileSync(join(root, l), '');
  }
  return root;
}

beforeAll(() => {
  init = buildInit();
  bundle = makeFakeBundle();
  env = cleanEnv({ HIGHWATER_HOME: bundle.home, HIGHWATER_RUN_DIR: join(mkdtempSync(join(tmpdir(), 'hw-init-')), 'run') });
});

describe('highwater-init and musl', () => {
  it('a musl root: one line, the command runs untouched (no LD_PRELOAD, no PYTHONPATH), its exit code kept', async () => {
    const root = fakeRoot(['lib/ld-musl-x86_64.so.1', 'lib/libc.musl-x86_64.so.1']);
    const r = await run(init, ['--', 'sh', '-c', `${SHOW}; exit 5`], { ...env, HIGHWATER_LIBC_ROOT: root, LD_PRELOAD: '' });
    expect(r.code).toBe(5);
    expect(r.stdout).toBe('LD_PRELOAD=[] PYTHONPATH=[]\n');
    expect(r.stderr).toBe(
      `highwater-init: this image's C library is musl (${root}/lib/ld-musl-*, no glibc loader); the shim needs glibc: running the command without highwater\n`,
    );
  });

  it('a glibc root (or a musl loader beside glibc): the shim is preloaded as usual', async () => {
    for (const loaders of [['lib64/ld-linux-x86-64.so.2'], ['lib/ld-musl-x86_64.so.1', 'lib64/ld-linux-x86-64.so.2'], ['lib/ld-linux-aarch64.so.1']]) {
      const r = await run(init, ['--', 'sh', '-c', SHOW], { ...env, HIGHWATER_LIBC_ROOT: fakeRoot(loaders) });
      expect(r.code, loaders.join(',')).toBe(0);
      expect(r.stdout, loaders.join(',')).toContain(`LD_PRELOAD=[${bundle.shim}]`);
      expect(r.stderr).not.toContain('musl');
    }
  });

  it('a program whose interpreter is the musl loader is run untouched on a glibc root', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-musl-prog-'));
    writeFileSync(join(dir, 'p.c'), 'int main(void) { return 0; }\n');
    const prog = join(dir, 'musl-prog');
    execFileSync('cc', ['-o', prog, join(dir, 'p.c'), '-Wl,--dynamic-linker=/lib/ld-musl-x86_64.so.1']);
    const r = await run(init, ['--', prog], env);
    expect(r.stderr).toContain(
      `highwater-init: ${prog} is a musl program (interpreter /lib/ld-musl-x86_64.so.1); the shim needs glibc: running the command without highwater\n`,
    );
    expect(r.code).toBe(127); // no musl loader on this machine: exec fails as a shell would say
    // A glibc program (this machine's sh) still gets the shim.
    const sh = await run(init, ['--', '/bin/sh', '-c', SHOW], env);
    expect(sh.stdout).toContain(`LD_PRELOAD=[${bundle.shim}]`);
    expect(sh.stderr).not.toContain('musl');
  });

  it('the launcher (highwater.sh) on a musl root: one line; `run ... -- CMD` runs CMD untouched, anything else exits 127', async () => {
    const launcher = join(repoRoot, 'native/init/highwater.sh');
    const root = fakeRoot(['lib/ld-musl-x86_64.so.1']);
    const r = await run('sh', [launcher, 'run', '-o', '/tmp/x', '--', 'sh', '-c', `${SHOW}; exit 4`], { ...env, HIGHWATER_LIBC_ROOT: root });
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('LD_PRELOAD=[] PYTHONPATH=[]\n');
    expect(r.stderr).toBe("highwater: this image's C library is musl; highwater needs glibc (use the highwater sidecar image): running without it\n");
    expect((await run('sh', [launcher, 'watch', '--run-dir', '/r'], { ...env, HIGHWATER_LIBC_ROOT: root })).code).toBe(127);
  });

  it('the Python bootstrap without the shim on a non-glibc Python: one line, and the program goes on', async () => {
    const code = (musl: boolean) =>
      [
        'import os',
        musl ? 'os.confstr = lambda name: (_ for _ in ()).throw(ValueError(name))' : '',
        'from highwater import _bootstrap',
        '_bootstrap.start()',
        'print("program ran")',
      ].join('\n');
    const pyEnv = { ...env, PYTHONPATH: join(repoRoot, 'native/python'), HIGHWATER_RUN_DIR: '/tmp/hw-run-musl' };
    const musl = await run('python3', ['-c', code(true)], pyEnv);
    expect(musl.stdout).toBe('program ran\n');
    expect(musl.stderr).toBe('highwater: this Python does not run on glibc (musl?): the shim cannot be loaded, the program runs without highwater\n');
    const glibc = await run('python3', ['-c', code(false)], pyEnv);
    expect(glibc.stdout).toBe('program ran\n');
    expect(glibc.stderr).toBe('');
  });
});
