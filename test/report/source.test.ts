// Source lines of state-file (post-mortem) reports, read from disk: the same
// text a dump from the shim carries for the same line, never a blocked read.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diskSourceReader, indentOf } from '../../sidecar/src/report/source.js';
import { bytesAtLine, freshDir, MiB, onlyReport, runProfiled } from '../helpers/cli.js';

describe('diskSourceReader', () => {
  it('reads 1-based lines; a line before the first or past the last is unknown', () => {
    const dir = freshDir('hw-src-');
    writeFileSync(join(dir, 'job.py'), 'import os\n    x = 1\r\nlast line, no newline');
    const read = diskSourceReader('');
    expect(read(join(dir, 'job.py'), 1)).toBe('import os');
    expect(read(join(dir, 'job.py'), 2)).toBe('    x = 1'); // CRLF: no \r left
    expect(read(join(dir, 'job.py'), 3)).toBe('last line, no newline');
    expect(read(join(dir, 'job.py'), 0)).toBeUndefined();
    expect(read(join(dir, 'job.py'), 4)).toBeUndefined();
  });

  it("resolves a relative path against the profiled process's cwd, not ours", () => {
    const dir = freshDir('hw-src-');
    mkdirSync(join(dir, 'pkg'));
    writeFileSync(join(dir, 'pkg', 'mod.py'), 'a = 1\nb = 2\n');
    expect(process.cwd()).not.toBe(dir);
    expect(diskSourceReader(dir)('pkg/mod.py', 2)).toBe('b = 2');
    expect(diskSourceReader('/nonexistent-cwd')('pkg/mod.py', 2)).toBeUndefined();
  });

  it('has no text for pseudo-files, directories, FIFOs (without blocking), missing and oversized files', () => {
    const dir = freshDir('hw-src-');
    execFileSync('mkfifo', [join(dir, 'fifo.py')]);
    mkdirSync(join(dir, 'dir.py'));
    writeFileSync(join(dir, 'huge.py'), Buffer.alloc(16 * MiB + 1, 0x61));
    writeFileSync(join(dir, 'limit.py'), Buffer.alloc(16 * MiB, 0x61));
    const read = diskSourceReader(dir);
    for (const f of ['<string>', '<frozen importlib._bootstrap>', '', 'fifo.py', 'dir.py', 'missing.py', 'huge.py']) {
      expect(read(f, 1), f).toBeUndefined();
    }
    expect(read('limit.py', 1)).toBe('a'.repeat(512)); // 16 MiB is still read, the line cut
  });

  it('reads each file once: later changes to it are not seen by the same reader', () => {
    const dir = freshDir('hw-src-');
    const f = join(dir, 'once.py');
    writeFileSync(f, 'first\n');
    const read = diskSourceReader(dir);
    expect(read(f, 1)).toBe('first');
    writeFileSync(f, 'second\n');
    expect(read(f, 1)).toBe('first');
    expect(diskSourceReader(dir)(f, 1)).toBe('second');
  });

  it('cuts a long line at 512 bytes as the shim does, also inside a multi-byte character', () => {
    const dir = freshDir('hw-src-');
    // 511 ASCII bytes, then a 2-byte é: the cut falls inside it (one byte left over).
    const lines = ['x'.repeat(600), 'x'.repeat(511) + 'é' + 'tail', 'x'.repeat(510) + '€€', 'é'.repeat(256) + 'z'];
    writeFileSync(join(dir, 'long.py'), lines.join('\n'));
    const read = diskSourceReader(dir);
    expect(read('long.py', 1)).toBe('x'.repeat(512));
    expect(read('long.py', 2)).toBe('x'.repeat(511) + '\uFFFD');
    expect(read('long.py', 3)).toBe('x'.repeat(510) + '\uFFFD\uFFFD'); // 2 of the 3 bytes of €
    expect(read('long.py', 4)).toBe('é'.repeat(256));
    for (let i = 1; i <= 4; i++) expect(Buffer.byteLength(read('long.py', i)!)).toBeLessThanOrEqual(512 * 3);
  });
});

describe('indentOf', () => {
  it('counts leading columns (a tab is 4), nothing for unindented or blank lines, at most 64', () => {
    expect(indentOf('x = 1')).toEqual({});
    expect(indentOf('    x = 1')).toEqual({ indent: 4 });
    expect(indentOf('\t  x')).toEqual({ indent: 6 });
    expect(indentOf('      ')).toEqual({});
    expect(indentOf(' '.repeat(100) + 'x')).toEqual({ indent: 64 });
  });
});

describe('a post-mortem source line = the dump source line of the same program', () => {
  it('a long non-ASCII line at which 8 MiB was allocated reads the same from disk as from the shim', async () => {
    const dir = freshDir('hw-src-run-');
    // The cut at 512 bytes lands inside a 3-byte character.
    const line = `a = bytearray(8 * 1024 * 1024); pad = "${'€'.repeat(200)}"`;
    writeFileSync(join(dir, 'long_line.py'), `import sys\n${line}\nsys.exit(0)\n`);
    const r = await runProfiled(['long_line.py'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const report = onlyReport(r.outDir);
    expect(bytesAtLine(report, 'long_line.py', 2)).toBe(8 * MiB + 1); // bytearray(n) allocates n + 1 (its NUL)
    const fromDump = report.stacks.flatMap((s) => s.frames).find((f) => f.file.endsWith('long_line.py') && f.line === 2)!;
    expect(fromDump.code.length).toBeGreaterThan(100);
    expect(diskSourceReader(dir)('long_line.py', 2)!.trim()).toBe(fromDump.code);
  });
});
