/**
 * For the line tests whose program records, at each allocation, the line of
 * every frame of its own file (test/fixtures/python/deep_lines.py,
 * chunk_drops.py, async_lines.py, shapes_lines.py, threads_lines.py): the
 * cases they run, the bytes the report gives each such stack, and the stacks
 * that differ from what the program recorded.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { expect } from 'vitest';
import { freshDir, pythons, reportDirs, runProfiled } from './cli.js';

/** Where pymalloc maps a new arena for a site's small objects (wrongStacks). */
export const ARENA = 256 * 1024;

/** Seed 7 and a random one; HW_LINES_SEED replays one. */
export const lineSeeds = process.env.HW_LINES_SEED ? [Number(process.env.HW_LINES_SEED)] : [7, Math.floor(Math.random() * 2 ** 31)];

/**
 * The three ways stacks are read: exact; sampled at a rate of 1 byte (every
 * allocation sampled, walked and exact, through sampling mode's readers:
 * 3.8 - 3.10's f_back walk and its per-level cache); and the profile
 * callback forced (HIGHWATER_STACKS=profile), the path 3.11+ take when their
 * frame layout is not verified (a new CPython, a debug or free-threaded
 * build), whose lines must be right without the GIL too.
 */
const lineModes = [
  ['exact', [], {}],
  ['sampled', ['--sample-rate', '1'], {}],
  ['profile callback', [], { HIGHWATER_STACKS: 'profile' }],
] as const;

/** Every CPython found × lineSeeds × the three modes, for it.each. */
export function lineCases() {
  return pythons().flatMap((p) => lineSeeds.flatMap((seed) => lineModes.map(([mode, flags, env]) => [p.version, seed, mode, p.path, flags, env] as const)));
}
export type LineCase = ReturnType<typeof lineCases>[number];

/**
 * Runs `program SEED OUT.json` under `highwater run` for one case: what the
 * program recorded (stack -> bytes), the report's bytes for the site stacks,
 * and a label naming the case and how to replay it.
 */
export async function runLineCase(program: string, sites: Set<number>, [version, seed, mode, exe, flags, env]: LineCase) {
  const expectedFile = join(freshDir('hw-lines-'), 'expected.json');
  const r = await runProfiled(['--', exe, program, String(seed), expectedFile], { timeoutMs: 120_000, flags: [...flags], env });
  const where = `Python ${version}, seed ${seed}, ${mode} (replay: HW_LINES_SEED=${seed})`;
  expect(r.code, `${where}\n${r.stderr}`).toBe(0);
  const expected = new Map(Object.entries(JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, number>));
  return { where, expected, got: bytesBySiteStack(r.outDir, program, sites) };
}

/** The deepest recorded stack, in frames of the program's file. */
export function deepest(expected: Map<string, number>): number {
  return Math.max(...[...expected.keys()].map((k) => k.split(',').length));
}

/** A data-stack chunk (CPython 3.11+: 16 KiB, more only for a frame that big). */
export const CHUNK = 16 * 1024;

/** Every recorded stack has its bytes in the report and the report has no other (wrongStacks). */
export function expectStacksRight(expected: Map<string, number>, got: Map<string, number>, where: string): void {
  const { wrong, arenas, chunks } = wrongStacks(expected, got, ARENA);
  expect(arenas, where).toBeLessThan(64);
  // One held chunk per thread at most (the fixtures run up to 4 threads).
  expect(chunks, where).toBeLessThanOrEqual(4);
  expect(wrong.slice(0, 5), `${where}: ${wrong.length} stacks wrong`).toEqual([]);
}

/** The lines of `program` marked `# site:` (where it allocates). */
export function siteLinesOf(program: string): Set<number> {
  const source = readFileSync(program, 'utf8').split('\n');
  return new Set(source.flatMap((l, i) => (l.includes('# site:') ? [i + 1] : [])));
}

/** Bytes per stack of the program's lines (root first, comma-joined), from
 * peak-memory.folded; only stacks whose innermost line of the program is a site. */
export function bytesBySiteStack(outDir: string, program: string, sites: Set<number>): Map<string, number> {
  const dirs = reportDirs(outDir);
  if (dirs.length !== 1) throw new Error(`expected one report in ${outDir}, found ${dirs.length}`);
  const file = basename(program);
  const byStack = new Map<string, number>();
  for (const row of readFileSync(join(dirs[0]!, 'peak-memory.folded'), 'utf8').split('\n')) {
    if (!row.trim()) continue;
    const cut = row.lastIndexOf(' ');
    const lines = row
      .slice(0, cut)
      .split(';')
      .map((label) => /^(.*):(\d+) \((.*)\)$/.exec(label))
      .filter((m): m is RegExpExecArray => m !== null && m[1] === file)
      .map((m) => Number(m[2]));
    if (!lines.length || !sites.has(lines[lines.length - 1]!)) continue;
    const key = lines.join(',');
    byStack.set(key, (byStack.get(key) ?? 0) + Number(row.slice(cut + 1)));
  }
  return byStack;
}

/**
 * The stacks whose bytes are not the recorded ones (within 5 %), and those
 * the program never had. Where pymalloc needed a new arena (`arena` bytes)
 * for the small objects a site's line makes, the report rightly charges its
 * mmap to that line; the program cannot see it: counted in `arenas`. So is
 * a data-stack chunk that a site line's own calls (the fixtures' `keep()`,
 * `note()`) pushed and that is still mapped at the peak: CPythons with a
 * chunk cache (3.13.13+, 3.14.4+, 3.15) keep the last popped one mapped, and
 * it is charged to the line whose call mapped it (`chunks`, one per stack).
 */
export function wrongStacks(expected: Map<string, number>, got: Map<string, number>, arena: number): { wrong: string[]; arenas: number; chunks: number } {
  const wrong: string[] = [];
  let arenas = 0;
  let chunks = 0;
  const near = (b: number, bytes: number) => b >= bytes * 0.95 && b <= bytes * 1.05;
  for (const [stack, bytes] of expected) {
    let b = got.get(stack) ?? 0;
    while (b - bytes >= arena) {
      b -= arena;
      arenas++;
    }
    if (!near(b, bytes) && near(b - CHUNK, bytes)) {
      b -= CHUNK;
      chunks++;
    }
    if (!near(b, bytes)) wrong.push(`${stack}: ${b} B, expected ${bytes} B`);
  }
  for (const [stack, bytes] of got) if (!expected.has(stack)) wrong.push(`${stack}: ${bytes} B, a stack the program never had`);
  return { wrong, arenas, chunks };
}
