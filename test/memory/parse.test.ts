import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import {
  findCgroupMounts,
  hostAvailableBytes,
  parseBytes,
  parseLimit,
  parseMeminfo,
  parseMemoryStat,
  parseMountinfo,
  parseProcCgroup,
  parseProcStatusVmSwap,
  v1MemoryEntry,
  v2Entry,
} from '../../sidecar/src/memory/parse.js';

const FX = join(import.meta.dirname, '../fixtures/cgroup');
const fx = (p: string): string => readFileSync(join(FX, p), 'utf8');
const V1_LEAF = 'v1/machine/sys/fs/cgroup/memory/process_api/7774752cf54730c6c630e0be0dce44ee';

function expectReadingError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(isHighwaterError(e, 'HW_ERR_READING')).toBe(true);
    return;
  }
  throw new Error('expected HW_ERR_READING');
}

describe('parseMeminfo', () => {
  it('reads kB values as bytes (real text)', () => {
    const m = parseMeminfo(fx('v1/machine/proc/meminfo'));
    expect(m.memTotalBytes).toBe(24684084 * 1024);
    expect(m.memAvailableBytes).toBeGreaterThan(0);
    expect(m.swapTotalBytes).toBe(0);
    expect(m.swapFreeBytes).toBe(0);
    expect(hostAvailableBytes(m)).toBe(m.memAvailableBytes);
  });
  it('falls back to MemFree + Buffers + Cached without MemAvailable', () => {
    const m = parseMeminfo(fx('broken/centos7/proc/meminfo'));
    expect(m.memAvailableBytes).toBeUndefined();
    expect(hostAvailableBytes(m)).toBe((3101152 + 203456 + 2534232) * 1024);
    expect(m.swapTotalBytes).toBe(2097148 * 1024);
  });
  it('rejects text without MemTotal', () => {
    expectReadingError(() => parseMeminfo(''));
    expectReadingError(() => parseMeminfo('garbage\n'));
  });
});

describe('parseMemoryStat', () => {
  it('v1: prefers the hierarchical total_inactive_file', () => {
    const s = parseMemoryStat(fx(`${V1_LEAF}/memory.stat`));
    expect(s.inactiveFileBytes).toBe(6160384);
    expect(s.anonBytes).toBe(2007040);
    expect(s.fileBytes).toBe(10084352);
    expect(s.swapBytes).toBe(0);
    expect(s.raw.get('hierarchical_memory_limit')).toBe(536870912);
  });
  it('v1 without total_* keys: inactive_file', () => {
    const s = parseMemoryStat(fx('broken/centos7/sys/fs/cgroup/memory/memory.stat'));
    expect(s.inactiveFileBytes).toBe(6160384);
    expect(s.anonBytes).toBe(2007040);
  });
  it('v2: inactive_file, anon, file', () => {
    const s = parseMemoryStat(fx('v2/container/sys/fs/cgroup/memory.stat'));
    expect(s.inactiveFileBytes).toBe(104857600);
    expect(s.anonBytes).toBe(304087040);
    expect(s.fileBytes).toBe(110522368);
    expect(s.swapBytes).toBeUndefined();
  });
  it('rejects empty and garbage text', () => {
    expectReadingError(() => parseMemoryStat(''));
    expectReadingError(() => parseMemoryStat('\x00\x01binary junk\n'));
  });
});

describe('parseProcCgroup', () => {
  it('v1 + v2 lines (real text)', () => {
    const e = parseProcCgroup(fx('v1/machine/proc/4242/cgroup'));
    expect(v1MemoryEntry(e)).toEqual({ id: 4, controllers: ['memory'], path: '/process_api/7774752cf54730c6c630e0be0dce44ee' });
    expect(v2Entry(e)).toEqual({ id: 0, controllers: [], path: '/' });
    expect(e.find((x) => x.id === 9)?.controllers).toEqual(['name=systemd']);
  });
  it('combined controllers and no v2 line (CentOS 7)', () => {
    const e = parseProcCgroup(fx('broken/centos7/proc/77/cgroup'));
    expect(v2Entry(e)).toBeUndefined();
    expect(v1MemoryEntry(e)?.path).toBe('/system.slice/docker-9f2c.scope');
    expect(e.find((x) => x.id === 10)?.controllers).toEqual(['cpuacct', 'cpu']);
  });
  it('v2 only; a path may contain ":"', () => {
    expect(parseProcCgroup('0::/a:b/c\n')).toEqual([{ id: 0, controllers: [], path: '/a:b/c' }]);
  });
  it('rejects garbage', () => {
    expectReadingError(() => parseProcCgroup('this is not a cgroup file\n'));
  });
});

describe('parseMountinfo / findCgroupMounts', () => {
  it('v1 machine: memory mount and the cgroup2 mount without memory', () => {
    const m = findCgroupMounts(parseMountinfo(fx('v1/machine/proc/4242/mountinfo')));
    expect(m.v1Memory).toMatchObject({ root: '/', mountPoint: '/sys/fs/cgroup/memory', fsType: 'cgroup' });
    expect(m.v2).toMatchObject({ root: '/', mountPoint: '/sys/fs/cgroup/unified', fsType: 'cgroup2' });
  });
  it('docker v1: mount root is the container cgroup; optional fields skipped', () => {
    const m = findCgroupMounts(parseMountinfo(fx('v1/docker/proc/77/mountinfo')));
    expect(m.v1Memory).toMatchObject({ root: '/docker/abc123', mountPoint: '/sys/fs/cgroup/memory' });
    expect(m.v2).toBeUndefined();
  });
  it('does not take cpu,cpuacct for memory', () => {
    const m = findCgroupMounts(parseMountinfo(fx('broken/centos7/proc/77/mountinfo')));
    expect(m.v1Memory?.mountPoint).toBe('/sys/fs/cgroup/memory');
    expect(m.v1Memory?.root).toBe('/system.slice/docker-9f2c.scope');
  });
  it('v2 container and host', () => {
    expect(findCgroupMounts(parseMountinfo(fx('v2/container/proc/1/mountinfo'))).v2).toMatchObject({
      root: '/',
      mountPoint: '/sys/fs/cgroup',
      superOptions: ['rw', 'nsdelegate', 'memory_recursiveprot'],
    });
    expect(findCgroupMounts(parseMountinfo(fx('v2/host/proc/2718/mountinfo'))).v2?.mountPoint).toBe('/sys/fs/cgroup');
  });
  it('unescapes octal escapes', () => {
    const [m] = parseMountinfo('36 35 98:0 /a\\040b /mnt/my\\040dir rw - ext3 /dev/root rw\n');
    expect(m).toMatchObject({ root: '/a b', mountPoint: '/mnt/my dir', fsType: 'ext3', source: '/dev/root' });
  });
  it('rejects lines without the separator', () => {
    expectReadingError(() => parseMountinfo('1 2 3\n'));
  });
});

describe('parseLimit', () => {
  it('numbers', () => {
    expect(parseLimit('536870912\n')).toBe(536870912);
  });
  it('no limit: v1 sentinels, v2 max, 0', () => {
    expect(parseLimit('9223372036854771712\n')).toBe(0);
    expect(parseLimit('9223372036854775807\n')).toBe(0);
    expect(parseLimit('9223372036854710272\n')).toBe(0); // 64 KiB pages
    expect(parseLimit('max\n')).toBe(0);
    expect(parseLimit('0\n')).toBe(0);
  });
  it('rejects garbage and empty text', () => {
    expectReadingError(() => parseLimit('garbage'));
    expectReadingError(() => parseLimit(''));
    expectReadingError(() => parseLimit('-1'));
  });
});

describe('parseBytes / parseProcStatusVmSwap', () => {
  it('parseBytes', () => {
    expect(parseBytes('13881344\n', 'x')).toBe(13881344);
    expectReadingError(() => parseBytes('', 'x'));
  });
  it('VmSwap in kB → bytes; absent → undefined', () => {
    expect(parseProcStatusVmSwap(fx('v1/machine/proc/4242/status'))).toBe(0);
    expect(parseProcStatusVmSwap('Name:\tpython\nVmSwap:\t    2048 kB\n')).toBe(2048 * 1024);
    expect(parseProcStatusVmSwap('Name:\tkthreadd\n')).toBeUndefined();
  });
});
