// The shim's end-to-end cases under a sanitized libhighwater.so (ASAN+UBSAN,
// `make -C native shim-asan`), preloaded after libasan as ASAN requires:
// LD_PRELOAD="$(gcc -print-file-name=libasan.so) native/build/asan/libhighwater.so".
// ASAN's own allocator then serves malloc and friends (its interceptors come
// first), so these runs exercise what the hooks forward to for maps and
// threads, the bootstrap API, the state file, readings, the control thread,
// the guard's OOM exit and the dump writer; the malloc-family core runs under
// ASAN+UBSAN in core.test.ts. Any sanitizer report fails the case.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures, freshDir, repoRoot } from '../helpers/cli.js';

const MiB = 1024 * 1024;
const native = join(repoRoot, 'native');
const python = '/usr/bin/python3';

execFileSync('make', ['-s', '-C', native, 'shim-asan'], { stdio: 'pipe' });
const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();

function sanitized(runDir: string, args: string[], extra: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(python, args, {
    encoding: 'utf8',
    timeout: 120_000,
    env: {
      ...process.env,
      LD_PRELOAD: `${libasan} ${join(native, 'build', 'asan', 'libhighwater.so')}`,
      // Python keeps its interned objects to the end: not our leaks.
      ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1:halt_on_error=1',
      UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
      PYTHONPATH: [join(native, 'python', 'bootstrap'), join(native, 'python')].join(':'),
      HIGHWATER_RUN_DIR: runDir,
      HIGHWATER_MODE: 'run',
      ...extra,
    },
  });
  const out = `${r.stdout}\n${r.stderr}`.slice(-6000);
  expect(r.stderr, out).not.toMatch(/Sanitizer|runtime error/);
  return { ...r, out };
}

function writeTree(tree: Record<string, string>): string {
  const root = freshDir('hw-asan-cg-');
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('the shim under ASAN+UBSAN', () => {
  it('tracks maps, a resize and threads, writes its state and exit dump', () => {
    const runDir = freshDir('hw-asan-');
    const r = sanitized(runDir, [join(fixtures, 'python', 'sanitized', 'maps_threads.py')]);
    expect(r.status, r.out).toBe(0);
    const m = /peak (\d+) current (\d+)/.exec(r.stdout);
    expect(m, r.out).not.toBeNull();
    // Held at the end: three 4 MiB maps and one resized to 8 MiB.
    expect(Number(m![2])).toBeGreaterThanOrEqual(20 * MiB);
    // At the peak the threads' maps (16 MiB + a resize each, some at once) were there too.
    expect(Number(m![1])).toBeGreaterThan(Number(m![2]));
    const files = readdirSync(runDir);
    expect(
      files.some((f) => /^hw-\d+\.state$/.test(f)),
      files.join(' '),
    ).toBe(true);
    expect(
      files.some((f) => /^hw-\d+-\d+\.dump$/.test(f)),
      files.join(' '),
    ).toBe(true);
  });

  it('stops a process under its floor with exit 53 and an oom dump', () => {
    // A 1 GiB cgroup v2 container with 1000 MiB in use: under the 100 MiB floor.
    const root = writeTree({
      'proc/self/cgroup': '0::/\n',
      'proc/self/mountinfo': '630 620 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup rw\n',
      'proc/meminfo': 'MemTotal: 16777216 kB\nMemFree: 8000000 kB\nMemAvailable: 8388608 kB\n',
      'proc/self/status': 'VmSwap: 0 kB\n',
      'sys/fs/cgroup/memory.max': `${1024 * MiB}\n`,
      'sys/fs/cgroup/memory.current': `${1000 * MiB}\n`,
      'sys/fs/cgroup/memory.stat': 'inactive_file 0\nactive_file 0\n',
    });
    const runDir = freshDir('hw-asan-');
    const r = sanitized(runDir, ['-c', 'import mmap; m = mmap.mmap(-1, 64 << 20); print("not stopped")'], {
      HIGHWATER_TEST_ROOT: root,
    });
    expect(r.status, r.out).toBe(53);
    expect(r.stdout).not.toContain('not stopped');
    const dump = readdirSync(runDir).find((f) => f.endsWith('.dump'));
    expect(dump, readdirSync(runDir).join(' ')).toBeDefined();
    expect(readFileSync(join(runDir, dump!), 'utf8')).toContain('"trigger":"oom"');
  });
});
