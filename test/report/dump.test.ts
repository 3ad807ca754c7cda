import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { parseDump, readDump } from '../../sidecar/src/report/dump.js';

const DUMPS = join(import.meta.dirname, '../fixtures/dumps');
const text = (name: string) => readFileSync(join(DUMPS, name), 'utf8');

function errorOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (isHighwaterError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a HighwaterError');
}

describe('parseDump', () => {
  test('resolves the seed example: header, frames with function and trimmed code', () => {
    const d = parseDump(text('example.dump'));
    expect(d.trigger).toBe('exit');
    expect(d.oomReason).toBeNull();
    expect(d.oomAllocation).toBeNull();
    expect(d.peakBytes).toBe(587207560);
    expect(d.timeMs).toBe(1764035000000);
    expect(d.process).toEqual({ pid: 12, argv: ['python', 'example.py'], python: '3.11.7', cwd: '/work' });
    expect(d.memory).toEqual({
      source: 'cgroup-v2',
      limitBytes: 1073741824,
      workingSetBytes: 650000000,
      availableBytes: 423741824,
      swapBytes: 0,
      floorBytes: 104857600,
    });
    expect(d.stacks.map((s) => s.bytes)).toEqual([83886080, 419430400, 4000, 83886080, 1000]);
    expect(d.stacks[1]!.frames).toEqual([
      { file: '/work/example.py', line: 15, function: '<module>', code: 'main()' },
      // Trimmed code; the indentation is kept apart, for display (issue 11).
      { file: '/work/example.py', line: 13, function: 'main', code: 'another_arr = make_big_array()', indent: 4 },
      { file: '/work/example.py', line: 4, function: 'make_big_array', code: 'return np.zeros((1024, 1024, 50))', indent: 4 },
    ]);
    expect(d.stacks[4]!.frames).toEqual([]);
    expect(d.currentStacks).toBeNull(); // exit dumps carry no "current" snapshot
  });

  test('oom dump: reason, oomAllocation, current stacks, missing source gives empty code', () => {
    const d = parseDump(text('oom.dump'));
    expect(d.trigger).toBe('oom');
    expect(d.oomReason).toBe('low-available');
    expect(d.oomAllocation).toEqual({
      bytes: 8796093022208,
      frames: [
        { file: '/app/job.py', line: 9, function: '<module>', code: 'load(N)' },
        { file: '/app/job.py', line: 4, function: 'load <rows> & "quote"', code: 'big = np.empty(n * 1024)', indent: 4 },
      ],
    });
    expect(d.currentStacks).toHaveLength(1);
    expect(d.currentStacks![0]!.bytes).toBe(2147483648);
  });

  test('code is empty when no source line was recorded', () => {
    const lines = text('example.dump')
      .split('\n')
      .filter((l) => !l.includes('"line":13,'));
    const fixed = lines.join('\n').replace('"sources":7', '"sources":6');
    const d = parseDump(fixed);
    expect(d.stacks[1]!.frames[1]).toEqual({ file: '/work/example.py', line: 13, function: 'main', code: '' });
  });

  test('truncated at a line boundary: HW_ERR_DUMP_TRUNCATED with the line count', () => {
    const e = errorOf(() => parseDump(text('truncated.dump')));
    expect(e.code).toBe('HW_ERR_DUMP_TRUNCATED');
    expect(e.message).toContain('read 9 lines');
  });

  test('truncated mid-line is truncated, not invalid', () => {
    const e = errorOf(() => parseDump(text('truncated-midline.dump')));
    expect(e.code).toBe('HW_ERR_DUMP_TRUNCATED');
    expect(e.message).toContain('read 12 lines');
  });

  test('empty input is truncated (0 lines)', () => {
    const e = errorOf(() => parseDump(''));
    expect(e).toEqual({ code: 'HW_ERR_DUMP_TRUNCATED', message: expect.stringContaining('read 0 lines') });
  });

  test('bad JSON names the line', () => {
    const e = errorOf(() => parseDump(text('bad-json.dump')));
    expect(e.code).toBe('HW_ERR_DUMP_INVALID');
    expect(e.message).toContain('line 6');
  });

  test('unknown version and missing header are invalid', () => {
    const v2 = text('example.dump').replace('"version":1', '"version":2');
    expect(errorOf(() => parseDump(v2))).toEqual({
      code: 'HW_ERR_DUMP_INVALID',
      message: expect.stringMatching(/line 1: unknown version 2/),
    });
    const noHeader = text('example.dump').split('\n').slice(1).join('\n');
    expect(errorOf(() => parseDump(noHeader))).toEqual({
      code: 'HW_ERR_DUMP_INVALID',
      message: expect.stringContaining('line 1: missing header'),
    });
  });

  test('unknown func id and wrong end counts are invalid', () => {
    const unknown = text('example.dump').replace('[[4,1]]', '[[99,1]]');
    expect(errorOf(() => parseDump(unknown)).message).toMatch(/line 8: .*unknown func id 99/);
    const counts = text('example.dump').replace('"stacks":5', '"stacks":6');
    expect(errorOf(() => parseDump(counts))).toEqual({
      code: 'HW_ERR_DUMP_INVALID',
      message: expect.stringContaining('line 18: end line says 6 stacks, the dump holds 5'),
    });
  });

  test('negative bytes are invalid', () => {
    const neg = text('example.dump').replace('"bytes":4000', '"bytes":-4000');
    expect(errorOf(() => parseDump(neg)).message).toContain('line 8');
  });

  test('CRLF line endings and unknown line types are accepted', () => {
    const crlf = text('example.dump').replace('{"type":"end"', '{"type":"future-thing","x":1}\n{"type":"end"').replace(/\n/g, '\r\n');
    expect(parseDump(crlf).stacks).toHaveLength(5);
  });

  test('readDump reads from disk', async () => {
    expect((await readDump(join(DUMPS, 'example.dump'))).peakBytes).toBe(587207560);
  });
});

describe('hostile values', () => {
  test('a timeMs no Date can hold reads as 0 (unknown) and the report renders', async () => {
    const t = text('example.dump').replace('"timeMs":1764035000000', `"timeMs":${Number.MAX_SAFE_INTEGER}`);
    const d = parseDump(t);
    expect(d.timeMs).toBe(0);
    const { renderReport } = await import('../../sidecar/src/report/render.js');
    const out = mkdtempSync(join(tmpdir(), 'hw-time-'));
    const { report } = await renderReport(d, out, { timestampedSubdir: false });
    expect(report.timeMs).toBe(0);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('unknown');
  });

  test('readDump: missing, directory, FIFO and symlink are HW_ERR_INPUT_UNREADABLE, without blocking', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-dumpin-'));
    execFileSync('mkfifo', [join(dir, 'fifo.dump')]);
    symlinkSync('/dev/zero', join(dir, 'zero.dump'));
    for (const [path, why] of [
      [join(dir, 'none.dump'), 'ENOENT'],
      [dir, 'a directory'],
      [join(dir, 'fifo.dump'), 'a FIFO'],
      [join(dir, 'zero.dump'), 'a symbolic link'],
    ] as const) {
      const err = await readDump(path).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isHighwaterError(err, 'HW_ERR_INPUT_UNREADABLE'), String(err)).toBe(true);
      expect((err as Error).message).toContain(why);
    }
  });
});
