// The line of every frame, at depth: a recursion up to ~190 frames deep
// (under the report's MAX_DEPTH, so peak-memory.folded has every frame) whose
// shape keeps changing, with one callee called from two lines of one caller,
// so that between two allocations only a caller deep down moves while every
// frame above it comes back at the same address, code and instruction (what
// a frame-walk cache that stopped at the first unchanged frame would get
// wrong). The program records, at each allocation, the line of every frame of
// its file as the interpreter reports it (f_lineno); the report must give each
// of these whole stacks its bytes, on every CPython 3.8 - 3.14 found.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, pythons, reportDirs, runProfiled } from '../helpers/cli.js';

const program = join(fixtures, 'python', 'deep_lines.py');
const source = readFileSync(program, 'utf8').split('\n');
const siteLines = new Set(source.flatMap((l, i) => (l.includes('# site:') ? [i + 1] : [])));

/** Bytes per stack of deep_lines.py lines (root first), from peak-memory.folded. */
function bytesByStack(outDir: string): Map<string, number> {
  const dirs = reportDirs(outDir);
  if (dirs.length !== 1) throw new Error(`expected one report in ${outDir}, found ${dirs.length}`);
  const byStack = new Map<string, number>();
  for (const row of readFileSync(join(dirs[0]!, 'peak-memory.folded'), 'utf8').split('\n')) {
    if (!row.trim()) continue;
    const cut = row.lastIndexOf(' ');
    const lines = row
      .slice(0, cut)
      .split(';')
      .map((label) => /^(.*):(\d+) \((.*)\)$/.exec(label))
      .filter((m): m is RegExpExecArray => m !== null && m[1] === 'deep_lines.py')
      .map((m) => Number(m[2]));
    // Only stacks whose innermost line of the program is an allocation site.
    if (!lines.length || !siteLines.has(lines[lines.length - 1]!)) continue;
    const key = lines.join(',');
    byStack.set(key, (byStack.get(key) ?? 0) + Number(row.slice(cut + 1)));
  }
  return byStack;
}

const ARENA = 256 * 1024;

const seeds = process.env.HW_LINES_SEED ? [Number(process.env.HW_LINES_SEED)] : [7, Math.floor(Math.random() * 2 ** 31)];
// Also under sampling at a rate of 1 byte: every allocation sampled, walked
// and exact, through sampling mode's readers (3.8 - 3.10: the f_back walk and
// its per-level cache).
const modes = [
  ['exact', []],
  ['sampled', ['--sample-rate', '1']],
] as const;
const cases = pythons().flatMap((p) => seeds.flatMap((seed) => modes.map(([mode, flags]) => [p.version, seed, mode, p.path, flags] as const)));

describe('lines of every frame in deep, shifting recursion', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(3);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (version, seed, mode, exe, flags) => {
    const expectedFile = join(freshDir('hw-deep-lines-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, String(seed), expectedFile], { timeoutMs: 120_000, flags: [...flags] });
    const where = `Python ${version}, seed ${seed}, ${mode} (replay: HW_LINES_SEED=${seed})`;
    expect(r.code, `${where}\n${r.stderr}`).toBe(0);
    const expected = new Map(Object.entries(JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, number>));
    const got = bytesByStack(r.outDir);
    // Deep enough to matter, and many distinct stacks.
    expect(Math.max(...[...expected.keys()].map((k) => k.split(',').length)), where).toBeGreaterThan(120);
    expect(expected.size, where).toBeGreaterThan(300);
    const wrong: string[] = [];
    let arenas = 0;
    for (const [stack, bytes] of expected) {
      let b = got.get(stack) ?? 0;
      // Where pymalloc needed a new arena (256 KiB up to 3.9, 1 MiB from
      // 3.10) for the small objects a site's line makes, the report rightly
      // charges its mmap to that line; the program cannot see it.
      while (b - bytes >= ARENA) {
        b -= ARENA;
        arenas++;
      }
      if (!(b >= bytes * 0.95 && b <= bytes * 1.05)) wrong.push(`${stack}: ${b} B, expected ${bytes} B`);
    }
    expect(arenas, where).toBeLessThan(64);
    for (const [stack, bytes] of got) if (!expected.has(stack)) wrong.push(`${stack}: ${bytes} B, a stack the program never had`);
    expect(wrong.slice(0, 5), `${where}: ${wrong.length} stacks wrong`).toEqual([]);
  });
});
