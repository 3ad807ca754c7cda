// A full report volume at OOM time: the job still exits 53, the failure names
// the path, and the raw dump is kept where the user is told.
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MiB, freshDir, runProfiled } from '../helpers/cli.js';

const mnt = freshDir('hw-tiny-');
let mounted = false;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', mnt]);
  mounted = true;
} catch {
  /* not root, or no mount: skipped below */
}
afterAll(() => {
  if (mounted) execFileSync('umount', [mnt]);
});

/** A cgroup v2 tree that leaves 74 MiB: the shim's guard fires at once (see test/shim). */
function lowMemoryTree(): string {
  const root = freshDir('hw-cgtree-');
  const files: Record<string, string> = {
    'proc/self/cgroup': '0::/\n',
    'proc/self/mountinfo': '630 620 0:30 / /sys/fs/cgroup ro - cgroup2 cgroup rw\n',
    'proc/meminfo': 'MemTotal: 16777216 kB\nMemAvailable: 8388608 kB\n',
    'sys/fs/cgroup/memory.max': `${1024 * MiB}\n`,
    'sys/fs/cgroup/memory.current': `${950 * MiB}\n`,
    'sys/fs/cgroup/memory.stat': 'inactive_file 0\n',
  };
  for (const [p, t] of Object.entries(files)) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), t);
  }
  return root;
}

describe.skipIf(!mounted)('report volume full (a 16 KiB tmpfs)', () => {
  it('still exits 53, names the path, keeps the raw dump', async () => {
    const r = await runProfiled(['-o', mnt, '--', 'python3', '-c', 'x = [bytearray(1000) for _ in range(5000)]'], {
      env: { HIGHWATER_TEST_ROOT: lowMemoryTree() },
    });
    expect(r.code, r.stderr).toBe(53);
    expect(r.stderr).toMatch(new RegExp(`could not render .*${mnt}.*ENOSPC`));
    const kept = /run dir kept with the raw data: (\S+)/.exec(r.stderr)?.[1];
    expect(kept).toBeDefined();
    expect(existsSync(kept!)).toBe(true);
    expect(readdirSync(kept!).some((f) => f.endsWith('.dump'))).toBe(true);
  });
});
