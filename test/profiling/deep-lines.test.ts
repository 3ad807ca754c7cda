// The line of every frame, at depth: a recursion up to ~190 frames deep
// (under the report's MAX_DEPTH, so peak-memory.folded has every frame) whose
// shape keeps changing, with one callee called from two lines of one caller,
// so that between two allocations only a caller deep down moves while every
// frame above it comes back at the same address, code and instruction (what
// a frame-walk cache that stopped at the first unchanged frame would get
// wrong). The program records, at each allocation, the line of every frame of
// its file as the interpreter reports it (f_lineno); the report must give each
// of these whole stacks its bytes, on every CPython 3.8 - 3.15 found.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, pythons, runProfiled } from '../helpers/cli.js';
import { bytesBySiteStack, siteLinesOf, wrongStacks } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'deep_lines.py');
const siteLines = siteLinesOf(program);

const ARENA = 256 * 1024;

const seeds = process.env.HW_LINES_SEED ? [Number(process.env.HW_LINES_SEED)] : [7, Math.floor(Math.random() * 2 ** 31)];
// Also under sampling at a rate of 1 byte: every allocation sampled, walked
// and exact, through sampling mode's readers (3.8 - 3.10: the f_back walk and
// its per-level cache).
// And with the profile callback forced (HIGHWATER_STACKS=profile): the path
// 3.11+ take when their frame layout is not verified (a new CPython, a debug
// or free-threaded build), whose lines must be right without the GIL too.
const modes = [
  ['exact', [], {}],
  ['sampled', ['--sample-rate', '1'], {}],
  ['profile callback', [], { HIGHWATER_STACKS: 'profile' }],
] as const;
const cases = pythons().flatMap((p) => seeds.flatMap((seed) => modes.map(([mode, flags, env]) => [p.version, seed, mode, p.path, flags, env] as const)));

describe('lines of every frame in deep, shifting recursion', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(3);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (version, seed, mode, exe, flags, env) => {
    const expectedFile = join(freshDir('hw-deep-lines-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, String(seed), expectedFile], { timeoutMs: 120_000, flags: [...flags], env });
    const where = `Python ${version}, seed ${seed}, ${mode} (replay: HW_LINES_SEED=${seed})`;
    expect(r.code, `${where}\n${r.stderr}`).toBe(0);
    const expected = new Map(Object.entries(JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, number>));
    const got = bytesBySiteStack(r.outDir, program, siteLines);
    // Deep enough to matter, and many distinct stacks.
    expect(Math.max(...[...expected.keys()].map((k) => k.split(',').length)), where).toBeGreaterThan(120);
    expect(expected.size, where).toBeGreaterThan(300);
    const { wrong, arenas } = wrongStacks(expected, got, ARENA);
    expect(arenas, where).toBeLessThan(64);
    expect(wrong.slice(0, 5), `${where}: ${wrong.length} stacks wrong`).toEqual([]);
  });
});
