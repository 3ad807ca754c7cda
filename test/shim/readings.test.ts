// The shim's own cgroup readers (C) and its synchronous guard, run on fixture
// trees through HIGHWATER_TEST_ROOT: cgroup v2 (the kind this machine lacks),
// cgroup v1 as Docker lays it out, working set vs. page cache, and the swap rule.
import { describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MiB, freshDir, onlyReport, runProfiled } from '../helpers/cli.js';

type Tree = Record<string, string>;

function writeTree(tree: Tree): string {
  const root = freshDir('hw-cgtree-');
  for (const [path, text] of Object.entries(tree)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const meminfo = `MemTotal:       16777216 kB\nMemFree:         8000000 kB\nMemAvailable:    8388608 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n`;

/** A container on a cgroup v2 host with cgroupns: /proc/self/cgroup says "0::/". */
function v2(current: number, inactiveFile: number, swap = 0): Tree {
  return {
    'proc/self/cgroup': '0::/\n',
    'proc/self/mountinfo':
      '620 610 0:26 / / rw,relatime - overlay overlay rw\n' +
      '630 620 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n',
    'proc/meminfo': meminfo,
    'proc/self/status': 'Name:\tpython3\nVmSwap:\t       0 kB\n',
    'sys/fs/cgroup/cgroup.controllers': 'cpuset cpu io memory pids\n',
    'sys/fs/cgroup/memory.max': `${1024 * MiB}\n`,
    'sys/fs/cgroup/memory.current': `${current}\n`,
    'sys/fs/cgroup/memory.swap.current': `${swap}\n`,
    'sys/fs/cgroup/memory.stat': `anon ${current - inactiveFile}\nfile ${inactiveFile}\nkernel 1000000\nactive_file 0\ninactive_file ${inactiveFile}\n`,
  };
}

/** Docker on a cgroup v1 host: the memory hierarchy mounted at the container's own cgroup. */
function v1(usage: number, inactiveFile: number): Tree {
  return {
    'proc/self/cgroup': '12:memory:/docker/0123abcd\n11:cpu,cpuacct:/docker/0123abcd\n0::/system.slice/containerd.service\n',
    'proc/self/mountinfo':
      '700 690 0:26 / / rw,relatime - overlay overlay rw\n' +
      '710 700 0:33 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - cgroup cgroup rw,memory\n',
    'proc/meminfo': meminfo,
    'proc/self/status': 'Name:\tpython3\nVmSwap:\t       0 kB\n',
    'sys/fs/cgroup/memory/memory.limit_in_bytes': `${1024 * MiB}\n`,
    'sys/fs/cgroup/memory/memory.usage_in_bytes': `${usage}\n`,
    'sys/fs/cgroup/memory/memory.stat': `cache ${inactiveFile}\nrss ${usage - inactiveFile}\ninactive_file ${inactiveFile}\ntotal_inactive_file ${inactiveFile}\n`,
  };
}

const script = ['-c', 'x = bytearray(1024 * 1024)'];
const run = (tree: Tree) => runProfiled(['--', 'python3', ...script], { env: { HIGHWATER_TEST_ROOT: writeTree(tree) } });

describe('shim readings and guard on fixture trees', () => {
  it('cgroup v2: 950 MiB used of 1 GiB leaves 74 MiB, under the 100 MiB floor: exit 53 before the allocation', async () => {
    const r = await run(v2(950 * MiB, 0));
    expect(r.code, r.stderr).toBe(53);
    const rep = onlyReport(r.outDir);
    expect(rep.trigger).toBe('oom');
    expect(rep.oomReason).toBe('low-available');
    expect(rep.memory).toMatchObject({ source: 'cgroup-v2', limitBytes: 1024 * MiB, workingSetBytes: 950 * MiB, availableBytes: 74 * MiB });
  });

  it('cgroup v2: the same usage mostly page cache (inactive_file) is no alarm', async () => {
    const r = await run(v2(950 * MiB, 500 * MiB));
    expect(r.code, r.stderr).toBe(0);
    const rep = onlyReport(r.outDir);
    expect(rep.memory).toMatchObject({ source: 'cgroup-v2', workingSetBytes: 450 * MiB, availableBytes: 574 * MiB });
  });

  it('cgroup v2: swap used beyond what is available fires the swap rule', async () => {
    const r = await run(v2(800 * MiB, 0, 300 * MiB));
    expect(r.code, r.stderr).toBe(53);
    expect(onlyReport(r.outDir).oomReason).toBe('swap');
  });

  it('cgroup v1 as Docker mounts it (root /docker/<id>): reads the container limit', async () => {
    const r = await run(v1(950 * MiB, 0));
    expect(r.code, r.stderr).toBe(53);
    expect(onlyReport(r.outDir).memory).toMatchObject({ source: 'cgroup-v1', limitBytes: 1024 * MiB, availableBytes: 74 * MiB });
  });

  it('an odd /proc (no cgroup lines, no MemAvailable) degrades to host readings, no crash', async () => {
    const r = await run({ 'proc/self/cgroup': 'garbage\n', 'proc/self/mountinfo': '', 'proc/meminfo': 'MemTotal: 1 kB\n' });
    expect(r.code, r.stderr).toBe(0);
    expect(onlyReport(r.outDir).memory.source).toBe('host');
  });

  it('detection disabled: the same low-memory tree runs to the end', async () => {
    const r = await runProfiled(['--disable-oom-detection', '--', 'python3', ...script], {
      env: { HIGHWATER_TEST_ROOT: writeTree(v2(950 * MiB, 0)) },
    });
    expect(r.code, r.stderr).toBe(0);
  });
});
