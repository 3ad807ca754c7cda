// A code object that dies leaves its address, and those of its name strings,
// to the next ones the program makes. Caches keyed by address served the
// dead code's file and lines for the new one: twelve generated modules run
// one after another were all charged to the first. The program writes, per
// allocation, the file, the line the interpreter reports and the bytes; the
// report must give each its own bytes, on every CPython found, exact and
// with every allocation sampled (3.8 - 3.10: the f_back walk).
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, pythons, reportDirs, runProfiled } from '../helpers/cli.js';

const program = join(fixtures, 'python', 'code_reuse.py');
const ARENA = 256 * 1024;
const modes = [
  ['exact', []],
  ['sampled', ['--sample-rate', '1']],
] as const;
const cases = pythons().flatMap((p) => modes.map(([mode, flags]) => [p.version, mode, p.path, flags] as const));

describe('code objects that die and come back at the same address', () => {
  it('has interpreters to check', () => expect(cases.length).toBeGreaterThan(0));

  it.each(cases)('Python %s, %s: each generated file keeps its own line and bytes', async (version, mode, exe, flags) => {
    const expectedFile = join(freshDir('hw-reuse-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, expectedFile], { flags: [...flags] });
    expect(r.code, r.stderr).toBe(0);
    const expected = JSON.parse(readFileSync(expectedFile, 'utf8')) as [string, number, string, number][];
    expect(expected).toHaveLength(36);
    const dirs = reportDirs(r.outDir);
    expect(dirs).toHaveLength(1);
    // Bytes per (file, line, function) of the innermost generated frame, from
    // the folded stacks (every stack; report.json keeps the largest).
    const got = new Map<string, number>();
    for (const row of readFileSync(join(dirs[0]!, 'peak-memory.folded'), 'utf8').split('\n')) {
      const m = /;(gen-(?:bare|mod|fn)-\d+\.py:\d+ \([^)]*\)) (\d+)$/.exec(row);
      if (m) got.set(m[1]!, (got.get(m[1]!) ?? 0) + Number(m[2]));
    }
    const wrong: string[] = [];
    for (const [file, line, fn, size] of expected) {
      const key = `${file}:${line} (${fn})`;
      let b = got.get(key) ?? 0;
      got.delete(key);
      // A pymalloc arena that line's small objects needed is rightly its own.
      while (b - size >= ARENA) b -= ARENA;
      if (!(b >= size && b <= size + 64)) wrong.push(`${key}: ${b} B, expected ${size} B`);
    }
    for (const [key, b] of got) if (b >= 64 * 1024) wrong.push(`${key}: ${b} B charged to a line nothing allocated at`);
    expect(wrong, `Python ${version}, ${mode}`).toEqual([]);
  });
});
