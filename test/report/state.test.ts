import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { parseStateFile, readStateFile } from '../../sidecar/src/report/state.js';
import { FUNC_RECORD, HEADER, NODE_RECORD } from '../../sidecar/src/state/layout.js';
import { buildStateFile, exampleStateSpec } from './state-writer.js';

const MiB = 1024 * 1024;
const FIXTURES = join(import.meta.dirname, '../fixtures/state');
const noSource = () => undefined;

function stateError(buf: Buffer): string {
  try {
    parseStateFile(buf, { readSource: noSource });
  } catch (e) {
    if (isHighwaterError(e, 'HW_ERR_STATE_INVALID')) return e.message;
    throw e; // a RangeError or TypeError here is the bug these tests look for
  }
  throw new Error('expected HW_ERR_STATE_INVALID');
}

describe('parseStateFile', () => {
  test('round trip of the seed example from the snapshot area (peakSource 0)', () => {
    const d = parseStateFile(buildStateFile(exampleStateSpec()), { readSource: noSource });
    expect(d.trigger).toBe('killed');
    expect(d.peakBytes).toBe(560 * MiB);
    expect(d.process).toEqual({ pid: 4242, argv: ['python', 'example.py'], python: '3.11.7', cwd: '/nonexistent-cwd' });
    expect(d.stacks.map((s) => s.bytes)).toEqual([400 * MiB, 80 * MiB, 80 * MiB]);
    expect(d.stacks[0]!.frames.map((f) => `${f.function}:${f.line}`)).toEqual(['<module>:15', 'main:13', 'make_big_array:4']);
    expect(d.stacks[2]!.frames.map((f) => `${f.function}:${f.line}`)).toEqual(['<module>:15', 'main:12', 'make_two_arrays:8']);
    expect(d.stacks[0]!.frames[0]).toEqual({ file: 'example.py', line: 15, function: '<module>', code: '' });
    expect(d.currentStacks).toBeNull();
  });

  test('peakSource 1 reads the live area instead', () => {
    const spec = { ...exampleStateSpec(), peakSource: 1 as const, peakBytes: 400 * MiB };
    const d = parseStateFile(buildStateFile(spec), { readSource: noSource, trigger: 'signal' });
    expect(d.trigger).toBe('signal');
    expect(d.stacks.map((s) => s.bytes)).toEqual([400 * MiB]);
  });

  test('root bytes become an empty-frames stack; zero and negative nodes are skipped', () => {
    const spec = { ...exampleStateSpec(), snapshot: [7, 0, -5, 100, 0, 0, 0] };
    const d = parseStateFile(buildStateFile(spec), { readSource: noSource });
    expect(d.stacks).toEqual([
      { bytes: 7, frames: [] },
      { bytes: 100, frames: expect.any(Array) },
    ]);
  });

  test('header fields: readings, source, oom reason, floor, time', () => {
    const spec = {
      ...exampleStateSpec(),
      readings: [2 * 1024 * MiB, 1900 * MiB, 100 * MiB, 1800 * MiB, 8000 * MiB, 248 * MiB, 3 * MiB] as [number, number, number, number, number, number, number],
      readingsSource: 2,
      oomReason: 1,
      floorBytes: 100 * MiB,
      updatedMs: 1700000000123,
    };
    const d = parseStateFile(buildStateFile(spec), { readSource: noSource });
    expect(d.memory).toEqual({
      source: 'cgroup-v2',
      limitBytes: 2 * 1024 * MiB,
      workingSetBytes: 1800 * MiB,
      availableBytes: 248 * MiB,
      swapBytes: 3 * MiB,
      floorBytes: 100 * MiB,
    });
    expect(d.oomReason).toBe('low-available');
    expect(d.timeMs).toBe(1700000000123);
  });

  test('source lines: callback, and the default disk reader relative to the state cwd with a per-file cache', () => {
    const calls: string[] = [];
    const d = parseStateFile(buildStateFile(exampleStateSpec()), {
      readSource: (file, line) => {
        calls.push(`${file}:${line}`);
        return `   line ${line}  `;
      },
    });
    expect(d.stacks[0]!.frames[2]!.code).toBe('line 4');
    expect(calls).toContain('example.py:4');

    const fromDisk = parseStateFile(buildStateFile({ ...exampleStateSpec(), cwd: FIXTURES }));
    expect(fromDisk.stacks[0]!.frames.map((f) => f.code)).toEqual(['main()', 'another_arr = make_big_array()', 'return np.zeros((1024, 1024, 50))']);
    // A file that does not exist leaves code empty rather than failing.
    const missing = parseStateFile(buildStateFile(exampleStateSpec()));
    expect(missing.stacks[0]!.frames[2]!.code).toBe('');
  });

  test('bad magic, version, header size', () => {
    const buf = buildStateFile(exampleStateSpec());
    const magic = Buffer.from(buf);
    magic.write('NOTSTATE', 0, 'latin1');
    expect(stateError(magic)).toContain('bad magic');
    const version = Buffer.from(buf);
    version.writeUInt32LE(2, HEADER.version);
    expect(stateError(version)).toContain('unknown version 2');
    const hsize = Buffer.from(buf);
    hsize.writeUInt32LE(100, HEADER.headerSize);
    expect(stateError(hsize)).toContain('header size 100');
  });

  test('truncated at every length: never a crash', () => {
    const buf = buildStateFile(exampleStateSpec());
    expect(stateError(buf.subarray(0, 100))).toContain('too short');
    // The snapshot area is last; only its published entries (7 nodes) must be present.
    const needed = Number(buf.readBigUInt64LE(HEADER.snapshotOffset)) + 7 * 8;
    for (let len = 4096; len < needed; len += 7) {
      expect(stateError(buf.subarray(0, len))).toMatch(/outside the \d+-byte file/);
    }
    expect(parseStateFile(buf.subarray(0, needed), { readSource: noSource }).stacks).toHaveLength(3);
  });

  test('hostile offsets, counts and references', () => {
    const base = buildStateFile(exampleStateSpec());
    const patch = (fn: (b: Buffer) => void) => {
      const b = Buffer.from(base);
      fn(b);
      return b;
    };
    expect(stateError(patch((b) => b.writeBigUInt64LE(2n ** 63n, HEADER.nodesOffset)))).toContain('out of range');
    expect(stateError(patch((b) => b.writeBigUInt64LE(10n, HEADER.nodesOffset)))).toContain('nodes area');
    expect(stateError(patch((b) => b.writeBigUInt64LE(1000n, HEADER.nodeCount)))).toContain('exceeds nodeCapacity');
    expect(stateError(patch((b) => b.writeBigUInt64LE(3n, HEADER.peakSource)))).toContain('peakSource 3');
    const nodesOff = Number(base.readBigUInt64LE(HEADER.nodesOffset));
    // A cycle: node 2's parent is itself.
    expect(stateError(patch((b) => b.writeUInt32LE(2, nodesOff + 2 * NODE_RECORD.size + NODE_RECORD.parent)))).toContain('node 2 has parent 2');
    expect(stateError(patch((b) => b.writeUInt32LE(77, nodesOff + 3 * NODE_RECORD.size + NODE_RECORD.func)))).toContain('refers to func 77');
    const funcsOff = Number(base.readBigUInt64LE(HEADER.funcsOffset));
    expect(stateError(patch((b) => b.writeUInt32LE(0xffffffff, funcsOff + FUNC_RECORD.fileLength)))).toContain('outside the strings area');
  });
});

describe('only the published part must be present', () => {
  test('a strings area whose capacity runs past the end of the file parses (only the strings the funcs name are read)', () => {
    const base = buildStateFile(exampleStateSpec());
    const stringsOff = Number(base.readBigUInt64LE(HEADER.stringsOffset));
    const usedLen = Number(base.readBigUInt64LE(HEADER.stringCapacity)) - 64; // the writer leaves 64 bytes spare
    const used = base.subarray(stringsOff, stringsOff + usedLen);
    // Move the strings to the very end and claim a 1 MiB capacity the file does not hold.
    const moved = Buffer.concat([base, used]);
    moved.writeBigUInt64LE(BigInt(base.length), HEADER.stringsOffset);
    moved.writeBigUInt64LE(BigInt(MiB), HEADER.stringCapacity);
    const d = parseStateFile(moved, { readSource: noSource });
    expect(d.stacks[0]!.frames.map((f) => `${f.function}:${f.line}`)).toEqual(['<module>:15', 'main:13', 'make_big_array:4']);
    // A name that runs past the end of the file is still refused, cleanly.
    const funcsOff = Number(moved.readBigUInt64LE(HEADER.funcsOffset));
    const cut = Buffer.from(moved);
    cut.writeUInt32LE(usedLen, funcsOff + FUNC_RECORD.fileLength); // func 0's file name now ends at the end of the file...
    expect(stateError(cut.subarray(0, cut.length - 1))).toContain('beyond the end of the file'); // ...which is one byte short
  });

  test('readStateFile reads a sparse file by its published extent, equal to parsing it whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-state-'));
    const buf = buildStateFile({ ...exampleStateSpec(), spareCapacity: 4 });
    const path = join(dir, 'hw-4242.state');
    writeFileSync(path, buf);
    truncateSync(path, 256 * MiB); // a shim's capacity: holes
    const fromFile = await readStateFile(path, { readSource: noSource });
    expect(fromFile).toEqual(parseStateFile(buf, { readSource: noSource }));
  });

  test('readStateFile refuses a symlink, a FIFO and a directory with HW_ERR_INPUT_UNREADABLE, without blocking', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-state-'));
    const real = join(dir, 'real.state');
    writeFileSync(real, buildStateFile(exampleStateSpec()));
    symlinkSync(real, join(dir, 'link.state'));
    execFileSync('mkfifo', [join(dir, 'fifo.state')]);
    mkdirSync(join(dir, 'dir.state'));
    for (const [name, why] of [
      ['link.state', 'a symbolic link'],
      ['fifo.state', 'a FIFO'],
      ['dir.state', 'a directory'],
    ] as const) {
      const err = await readStateFile(join(dir, name)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isHighwaterError(err, 'HW_ERR_INPUT_UNREADABLE'), String(err)).toBe(true);
      expect((err as Error).message).toContain(why);
    }
  });

  test('an updatedMs no Date can hold reads as 0 (unknown), not a RangeError later', () => {
    const spec = { ...exampleStateSpec(), updatedMs: Number.MAX_SAFE_INTEGER };
    expect(parseStateFile(buildStateFile(spec), { readSource: noSource }).timeMs).toBe(0);
  });
});
