// The shim's core without Python and without LD_PRELOAD: native/test/core_test.c
// links every native/shim unit but the interposer (hooks.c) and the exported
// API (init.c), and checks the live-block table, mmap ranges and mremap, the
// peak snapshot, the guard (budget, verdict, trip to exit 53, floor), the
// cgroup readings, in one process per case. Built three ways: plain,
// ASAN+UBSAN (any report aborts the case), TSAN (threads hammering the core;
// any report fails it).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythons, repoRoot } from '../helpers/cli.js';

const native = join(repoRoot, 'native');
const builds = {
  plain: { target: 'test-core', bin: join(native, 'build', 'test', 'core_test') },
  'asan+ubsan': { target: 'test-core-asan', bin: join(native, 'build', 'asan', 'core_test') },
  tsan: { target: 'test-core-tsan', bin: join(native, 'build', 'tsan', 'core_test') },
} as const;

const env = {
  ...process.env,
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=1:halt_on_error=1',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  // The cgroup_race case forks while a thread may run: TSAN must not hang on it.
  TSAN_OPTIONS: 'halt_on_error=1:exitcode=66:die_after_fork=0',
};

for (const [name, build] of Object.entries(builds)) {
  describe(`core_test (${name})`, () => {
    execFileSync('make', ['-s', '-C', native, build.target], { stdio: 'pipe' });
    const cases = execFileSync(build.bin, { encoding: 'utf8' }).trim().split('\n');

    it('lists its cases', () => {
      expect(cases).toEqual(
        expect.arrayContaining([
          'blocks',
          'peak',
          'ranges',
          'guard_budget',
          'cgroup_race',
          'small_stack',
          'threads',
          'sampling_threads',
          'exact_threads',
          'guard_thread_chunks',
          'guard_floor_threads',
          'intern_front',
          'code_forget',
          'usable_chunks',
        ]),
      );
    });

    for (const c of cases) {
      it(
        c,
        () => {
          const r = spawnSync(build.bin, [c], { env, encoding: 'utf8', timeout: 280_000 });
          const out = `${r.stdout}\n${r.stderr}`.slice(-6000);
          expect(r.status, out).toBe(0);
          expect(r.stdout, out).toContain(`ok ${c}`);
          expect(r.stderr, out).not.toMatch(/Sanitizer|runtime error/);
        },
        300_000,
      );
    }
  });
}

// Another glibc: the Debian sid root that .ci/debian-pythons.sh unpacks for
// HIGHWATER_TEST_PYTHONS carries its own (2.43 on 2026-12-01; bookworm's is
// 2.36). The plain build runs every case on it through that glibc's loader.
// There an mmapped chunk's size word counts 8 bytes of header, not 16: before
// the probe learnt that, usable_chunks failed there (the size words were
// never used, and sampling mode lost its lean path).
const otherLibcs = [
  ...new Set(
    pythons()
      .filter((p) => !p.path.includes('/.pyenv/'))
      .map((p) => join(dirname(dirname(p.path)), 'lib', 'x86_64-linux-gnu')),
  ),
].filter((dir) => existsSync(join(dir, 'ld-linux-x86-64.so.2')));
for (const lib of otherLibcs) {
  describe(`core_test (plain) on the glibc in ${lib}`, () => {
    execFileSync('make', ['-s', '-C', native, builds.plain.target], { stdio: 'pipe' });
    const loader = join(lib, 'ld-linux-x86-64.so.2');
    const cases = execFileSync(loader, ['--library-path', lib, builds.plain.bin], { encoding: 'utf8' }).trim().split('\n');
    it('is another glibc than the system one', () => {
      const version = (ld: string) => /version (\d+\.\d+)/.exec(execFileSync(ld, ['--version'], { encoding: 'utf8' }))?.[1];
      expect(version(loader)).toMatch(/^2\.\d+$/);
      expect(version(loader)).not.toBe(version('/lib64/ld-linux-x86-64.so.2'));
    });
    for (const c of cases) {
      it(
        c,
        () => {
          const r = spawnSync(loader, ['--library-path', lib, builds.plain.bin, c], { env, encoding: 'utf8', timeout: 280_000 });
          const out = `${r.stdout}\n${r.stderr}`.slice(-6000);
          expect(r.status, out).toBe(0);
          expect(r.stdout, out).toContain(`ok ${c}`);
        },
        300_000,
      );
    }
  });
}
