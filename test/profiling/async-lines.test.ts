// The line of every frame in asyncio programs: coroutines that await each
// other, gather children, run as tasks side by side and resume at other
// depths, allocating before and after their awaits. A resumed coroutine's
// frames hang under the event loop that resumed it; the interpreter's own
// f_lineno at each allocation, for every frame of the program's file, is the
// answer, and the report must give each of these whole stacks its bytes, on
// every CPython 3.8 - 3.15 found, exact and sampled at a rate of 1 byte.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, pythons, runProfiled } from '../helpers/cli.js';
import { bytesBySiteStack, siteLinesOf, wrongStacks } from '../helpers/site-stacks.js';

const program = join(fixtures, 'python', 'async_lines.py');
const siteLines = siteLinesOf(program);

const ARENA = 256 * 1024;

const seeds = process.env.HW_LINES_SEED ? [Number(process.env.HW_LINES_SEED)] : [7, Math.floor(Math.random() * 2 ** 31)];
// And with the profile callback forced (HIGHWATER_STACKS=profile): the path
// 3.11+ take when their frame layout is not verified (a new CPython, a debug
// or free-threaded build), whose lines must be right without the GIL too.
const modes = [
  ['exact', [], {}],
  ['sampled', ['--sample-rate', '1'], {}],
  ['profile callback', [], { HIGHWATER_STACKS: 'profile' }],
] as const;
const cases = pythons().flatMap((p) => seeds.flatMap((seed) => modes.map(([mode, flags, env]) => [p.version, seed, mode, p.path, flags, env] as const)));

describe('lines of every frame in asyncio tasks', () => {
  it('has sites to check', () => {
    expect(siteLines.size).toBe(5);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (version, seed, mode, exe, flags, env) => {
    const expectedFile = join(freshDir('hw-async-lines-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, String(seed), expectedFile], { timeoutMs: 120_000, flags: [...flags], env });
    const where = `Python ${version}, seed ${seed}, ${mode} (replay: HW_LINES_SEED=${seed})`;
    expect(r.code, `${where}\n${r.stderr}`).toBe(0);
    const expected = new Map(Object.entries(JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, number>));
    const got = bytesBySiteStack(r.outDir, program, siteLines);
    // Many distinct stacks, some of them under the event loop several tasks deep.
    expect(expected.size, where).toBeGreaterThan(100);
    expect(Math.max(...[...expected.keys()].map((k) => k.split(',').length)), where).toBeGreaterThan(8);
    const { wrong, arenas } = wrongStacks(expected, got, ARENA);
    expect(arenas, where).toBeLessThan(64);
    expect(wrong.slice(0, 5), `${where}: ${wrong.length} stacks wrong`).toEqual([]);
  });
});
