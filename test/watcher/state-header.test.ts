// The status part of the state header as a watcher in another container reads it.
import { describe, expect, it } from 'vitest';
import { cmdlineMatches } from '../../sidecar/src/watcher/identity.js';
import { parseStateHeader, readingsFromHeader } from '../../sidecar/src/watcher/state-header.js';

function header(): Buffer {
  const b = Buffer.alloc(4096);
  b.write('HWSTATE1', 0, 'latin1');
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(4096, 12);
  const u = (off: number, v: number) => b.writeBigUInt64LE(BigInt(v), off);
  u(16, 7); // pid
  u(40, 1000); // currentBytes
  u(48, 5000); // peakBytes
  u(128, 1764035000000); // updatedMs
  u(136, 1); // tracking
  u(144, 104857600); // floor
  [419430400, 300000000, 10000000, 290000000, 2000000000, 129430400, 4096].forEach((v, k) => u(152 + k * 8, v));
  u(208, 2); // cgroup-v2
  u(216, 1); // low-available
  u(224, 0x100 + 53);
  u(232, 5000000); // activeFileBytes
  b.write('3.11.7', 256, 'latin1');
  b.write('python3\0job.py\0', 288, 'utf8');
  b.write('/app', 1312, 'utf8');
  return b;
}

describe('state header', () => {
  it('parses the status fields at their documented offsets', () => {
    const h = parseStateHeader(header())!;
    expect(h).toMatchObject({
      pid: 7,
      currentBytes: 1000,
      peakBytes: 5000,
      updatedMs: 1764035000000,
      tracking: true,
      floorBytes: 104857600,
      limitBytes: 419430400,
      usageBytes: 300000000,
      inactiveFileBytes: 10000000,
      workingSetBytes: 290000000,
      hostAvailableBytes: 2000000000,
      availableBytes: 129430400,
      swapBytes: 4096,
      activeFileBytes: 5000000,
      readingsSource: 'cgroup-v2',
      oomReason: 'low-available',
      exitStatus: 0x135,
      python: '3.11.7',
      argv: ['python3', 'job.py'],
      cwd: '/app',
    });
    expect(readingsFromHeader(h)).toEqual({
      source: 'cgroup-v2',
      limitBytes: 419430400,
      usageBytes: 300000000,
      inactiveFileBytes: 10000000,
      workingSetBytes: 290000000,
      hostAvailableBytes: 2000000000,
      hostTotalBytes: 0,
      availableBytes: 129430400,
      swapBytes: 4096,
      activeFileBytes: 5000000,
    });
  });

  it('refuses what is not (yet) a version-1 state file; no readings without a source', () => {
    expect(parseStateHeader(header().subarray(0, 4095))).toBeUndefined();
    const bad = header();
    bad.write('HWSTATE2', 0, 'latin1');
    expect(parseStateHeader(bad)).toBeUndefined();
    const none = header();
    none.writeBigUInt64LE(0n, 208);
    expect(readingsFromHeader(parseStateHeader(none)!)).toBeUndefined();
  });

  it('matches a cmdline against the recorded argv, a cut-short copy by prefix only when long', () => {
    expect(cmdlineMatches(['python3', 'job.py'], 'python3\0job.py\0')).toBe(true);
    expect(cmdlineMatches(['python3', 'job.py'], 'node\0main.js\0watch\0')).toBe(false);
    expect(cmdlineMatches(['python3', 'job'], 'python3\0job.py\0')).toBe(false);
    const long = 'x'.repeat(1100);
    expect(cmdlineMatches(['python3', long.slice(0, 1015)], `python3\0${long}\0`)).toBe(true);
    expect(cmdlineMatches([], '')).toBe(false);
  });
});
