// The walk's proof that levels did not run (3.11+, native/shim/datastack.c):
// a stack that comes down into a lower chunk of the interpreter's data stack
// and grows back the same way, with only a caller in that lower chunk moved
// (test/fixtures/python/chunk_drops.py: fat frames, ~20 to a chunk; towers
// left by return, by an exception, under a generator, in a second thread).
// The program records every frame's line (f_lineno) at each allocation; the
// report must give each whole stack its bytes, on every CPython found.
//
// "coarse" samples at 256 KiB with sites of 256 KiB: every site is sampled
// and exact, while the data-stack chunks (16 KiB mmaps, each otherwise a
// walk that re-reads the chain) mostly are not. Only there does the walk
// rest on the unmaps it saw alone: with the shim's munmap hook not telling
// the walk, 239 of 676 stacks came out wrong (seed 7, 3.12).
//
// "pooled" is "coarse" under an arena allocator the program installs, which
// keeps freed chunks and hands them back without unmapping them: the shim
// must notice the allocator changed and prove nothing. With that check
// turned off (hw__arena_same always true), 280 of 676 stacks were wrong.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, pythons, runProfiled } from '../helpers/cli.js';
import { buildTestLib } from '../helpers/native.js';
import { bytesBySiteStack, deepest, expectStacksRight, lineSeeds, siteLinesOf } from '../helpers/site-stacks.js';

// The slack the shim is told to allow for the cache (HIGHWATER_TEST_CHUNK_CACHE,
// datastack.c): 1, what a one-chunk cache needs; HW_CHUNK_SLACK=0 shows
// what the walk without it does there.
const slackUnderTest = process.env.HW_CHUNK_SLACK ?? '1';

const program = join(fixtures, 'python', 'chunk_drops.py');
const siteLines = siteLinesOf(program);
const coarse = ['--sample-rate', '262144'];
const modes: [string, string[], number, () => Record<string, string>][] = [
  ['exact', [], 16384, () => ({})],
  ['coarse', coarse, 262144, () => ({})],
  ['pooled', coarse, 262144, () => ({ POOL_ARENA: buildTestLib('pool_arena') })],
  ['one cached chunk', coarse, 262144, () => ({ POOL_ARENA: buildTestLib('cache1_arena'), HIGHWATER_TEST_CHUNK_CACHE: slackUnderTest })],
  [
    'one cached chunk, the older kept',
    coarse,
    262144,
    () => ({ POOL_ARENA: buildTestLib('cache1_arena'), CACHE1_KEEP: 'oldest', HIGHWATER_TEST_CHUNK_CACHE: slackUnderTest }),
  ],
];
const cases = pythons().flatMap((p) =>
  lineSeeds.flatMap((seed) => modes.map(([mode, flags, base, env]) => [p.version, seed, mode, p.path, flags, base, env] as const)),
);

describe('lines of every frame when the stack comes down into lower data-stack chunks', () => {
  it('has a site to check', () => {
    expect(siteLines.size).toBe(1);
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, seed %i, %s', async (version, seed, mode, exe, flags, base, env) => {
    const expectedFile = join(freshDir('hw-chunk-drops-'), 'expected.json');
    const r = await runProfiled(['--', exe, program, String(seed), expectedFile, String(base)], {
      timeoutMs: 120_000,
      flags: [...flags],
      env: env(),
    });
    const where = `Python ${version}, seed ${seed}, ${mode} (replay: HW_LINES_SEED=${seed})`;
    expect(r.code, `${where}\n${r.stderr}`).toBe(0);
    // The proof ran (3.11 - 3.13 here), with the slack the mode is about.
    const minor = Number(/^3\.(\d+)/.exec(version)![1]);
    const slack = /^datastack_slack (-?\d+)$/m.exec(r.stdout)?.[1];
    if (minor < 11) expect(slack, where).toBe('-1');
    else if (minor <= 13)
      expect(slack, where).toBe(
        mode.startsWith('one cached chunk') ? slackUnderTest : version.startsWith('3.13.') && Number(version.split('.')[2]) >= 13 ? '1' : '0',
      );
    const expected = new Map(Object.entries(JSON.parse(readFileSync(expectedFile, 'utf8')) as Record<string, number>));
    // Towers of up to 70 fat frames (four chunks), many distinct stacks.
    expect(deepest(expected), where).toBeGreaterThan(90);
    expect(expected.size, where).toBeGreaterThan(400);
    expectStacksRight(expected, bytesBySiteStack(r.outDir, program, siteLines), where);
  });
});
