import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { locateMemoryCgroup } from '../../sidecar/src/memory/cgroup.js';
import { readReadings, totalBytes } from '../../sidecar/src/memory/read.js';

const FX = join(import.meta.dirname, '../fixtures/cgroup');
const roots = (tree: string) => ({ procRoot: join(FX, tree, 'proc'), rootPrefix: join(FX, tree) });

function recorder() {
  const warnings: string[] = [];
  return { warnings, logger: { warn: (_o: object, msg: string) => void warnings.push(msg) } };
}

const HOST_TOTAL = 24684084 * 1024;

describe('locateMemoryCgroup', () => {
  it('v1 machine: v2 mount without the memory controller is skipped', () => {
    expect(locateMemoryCgroup(4242, roots('v1/machine'))).toEqual({
      version: 1,
      dir: join(FX, 'v1/machine/sys/fs/cgroup/memory/process_api/7774752cf54730c6c630e0be0dce44ee'),
    });
  });
  it('docker v1: path equal to the mount root maps to the mount point', () => {
    expect(locateMemoryCgroup(77, roots('v1/docker'))?.dir).toBe(join(FX, 'v1/docker/sys/fs/cgroup/memory'));
  });
  it('path "/" with a non-"/" mount root maps to the mount point', () => {
    expect(locateMemoryCgroup(77, roots('v1/docker-odd-root'))?.dir).toBe(join(FX, 'v1/docker-odd-root/sys/fs/cgroup/memory'));
  });
  it('v2 container (0::/) and v2 host (systemd scope)', () => {
    expect(locateMemoryCgroup(1, roots('v2/container'))).toEqual({
      version: 2,
      dir: join(FX, 'v2/container/sys/fs/cgroup'),
    });
    expect(locateMemoryCgroup(2718, roots('v2/host'))).toEqual({
      version: 2,
      dir: join(FX, 'v2/host/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope'),
    });
  });
  it('mount points can be overridden', () => {
    const dir = join(FX, 'v1/docker/sys/fs/cgroup/memory');
    expect(locateMemoryCgroup(77, { procRoot: join(FX, 'v1/docker/proc'), cgroupV1MemoryMount: dir })?.dir).toBe(dir);
  });
  it('a missing /proc/<pid>/cgroup is HW_ERR_READING', () => {
    expect(() => locateMemoryCgroup(999, roots('v1/docker'))).toThrow(/cannot read/);
  });
});

describe('readReadings', () => {
  it('v1 with a limit: working set = usage − total_inactive_file, available = limit − working set', () => {
    const { warnings, logger } = recorder();
    const r = readReadings(4242, { ...roots('v1/machine'), logger });
    expect(r).toMatchObject({
      source: 'cgroup-v1',
      limitBytes: 536870912,
      usageBytes: 13881344,
      inactiveFileBytes: 6160384,
      workingSetBytes: 13881344 - 6160384,
      availableBytes: 536870912 - (13881344 - 6160384),
      hostTotalBytes: HOST_TOTAL,
      swapBytes: 0,
    });
    expect(totalBytes(r)).toBe(536870912);
    expect(warnings).toEqual([]);
  });
  it('v1 docker (mount root not "/")', () => {
    const r = readReadings(77, roots('v1/docker'));
    expect(r).toMatchObject({ source: 'cgroup-v1', limitBytes: 471859200, workingSetBytes: 367001600 - 52428800 });
    expect(r.availableBytes).toBe(471859200 - (367001600 - 52428800));
  });
  it('v1 swap = memsw − usage', () => {
    expect(readReadings(77, roots('v1/swap')).swapBytes).toBe(67108864);
  });
  it('v2 container: memory.current, memory.max, inactive_file, swap.current', () => {
    const r = readReadings(1, roots('v2/container'));
    expect(r).toMatchObject({
      source: 'cgroup-v2',
      limitBytes: 1073741824,
      usageBytes: 419430400,
      inactiveFileBytes: 104857600,
      workingSetBytes: 314572800,
      availableBytes: 1073741824 - 314572800,
      swapBytes: 0,
    });
  });
  it('v2 host without a limit: available is host MemAvailable, total is host MemTotal', () => {
    const r = readReadings(2718, roots('v2/host'));
    expect(r.source).toBe('cgroup-v2');
    expect(r.limitBytes).toBe(0);
    expect(r.workingSetBytes).toBe(2147483648 - 268435456);
    expect(r.availableBytes).toBe(r.hostAvailableBytes);
    expect(totalBytes(r)).toBe(HOST_TOTAL);
  });
  it('limit 0 means no limit', () => {
    const r = readReadings(77, roots('broken/limit-0'));
    expect(r.source).toBe('cgroup-v1');
    expect(r.limitBytes).toBe(0);
    expect(r.availableBytes).toBe(r.hostAvailableBytes);
  });
  it('CentOS 7: huge limit, scope root, no MemAvailable', () => {
    const { warnings, logger } = recorder();
    const r = readReadings(77, { ...roots('broken/centos7'), logger });
    expect(r.source).toBe('cgroup-v1');
    expect(r.limitBytes).toBe(0);
    expect(r.hostAvailableBytes).toBe((3101152 + 203456 + 2534232) * 1024);
    expect(r.workingSetBytes).toBe(209715200 - 6160384);
    expect(warnings).toEqual([]);
  });
  for (const tree of ['empty-files', 'garbage', 'missing-stat', 'odd-proc-cgroup']) {
    it(`broken/${tree}: host-only readings with one warning`, () => {
      const { warnings, logger } = recorder();
      const warned = new Set<string>();
      const r = readReadings(77, { ...roots(`broken/${tree}`), logger, warned });
      readReadings(77, { ...roots(`broken/${tree}`), logger, warned });
      expect(r.source).toBe('host');
      expect(r.limitBytes).toBe(0);
      expect(r.availableBytes).toBe(r.hostAvailableBytes);
      expect(r.hostTotalBytes).toBe(HOST_TOTAL);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/host-wide memory readings only/);
    });
  }
  it('a process that ended (a real zombie, then gone) reads host-only without a warning', async () => {
    // Its mountinfo fails with EINVAL once it is a zombie: the watcher read
    // the readings of a process that had just exited and warned that the
    // memory cgroup could not be read.
    const child = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 3'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((res) => child.stdout.once('data', (d: Buffer) => res(d.toString()))));
      // Zombie: its parent (the exec'd sleep) never reaps it.
      while (!/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'latin1'))) await new Promise((r) => setTimeout(r, 20));
      expect(() => readFileSync(`/proc/${pid}/mountinfo`)).toThrow(/EINVAL/);
      const { warnings, logger } = recorder();
      expect(readReadings(pid, { logger }).source).toBe('host');
      expect(readReadings(999_999_999, { logger }).source).toBe('host');
      expect(warnings).toEqual([]);
      // A live process whose cgroup files are odd is still said once (above).
    } finally {
      child.kill('SIGKILL');
    }
  });
  it('no /proc/meminfo at all is HW_ERR_READING', () => {
    try {
      readReadings(77, roots('broken/no-meminfo'));
      expect.unreachable();
    } catch (e) {
      expect(isHighwaterError(e, 'HW_ERR_READING')).toBe(true);
    }
  });
  it('this machine: real readings never throw', () => {
    const r = readReadings('self');
    expect(['cgroup-v1', 'cgroup-v2', 'host']).toContain(r.source);
    expect(r.hostTotalBytes).toBeGreaterThan(0);
    expect(r.availableBytes).toBeGreaterThan(0);
  });
});
