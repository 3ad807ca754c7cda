// A program with its own profile function (sys.setprofile: cProfile,
// pyinstrument), set inside a function that then returns. Its profiler must
// see every event it sees without highwater, on every CPython found. The
// default stack readers (the frame walk on 3.11+, the frame-evaluation hook
// on 3.8 - 3.10) do not depend on a profile function: both sites get their
// bytes. The profile callback (forced here; the path where a frame layout is
// not verified) stops being called once the program's function replaces it:
// the shim then never reads the frame that was running (it ended: its frame
// object was freed and reused, which crashed 3.13 and gave other functions'
// lines before), and charges the allocations to no line rather than to a
// line the program has left.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures, pythons, reportDirs, runProfiled } from '../helpers/cli.js';

const program = join(fixtures, 'python', 'own_profiler.py');
const source = readFileSync(program, 'utf8').split('\n');
const lineOf = (marker: string) => source.findIndex((l) => l.includes(marker)) + 1;
const MiB = 1024 * 1024;

/** Bytes per innermost own_profiler.py line ('-' when no frame of it). */
function bytesByLine(outDir: string): Map<string, number> {
  const dirs = reportDirs(outDir);
  expect(dirs).toHaveLength(1);
  const by = new Map<string, number>();
  for (const row of readFileSync(join(dirs[0]!, 'peak-memory.folded'), 'utf8').split('\n')) {
    if (!row.trim()) continue;
    const cut = row.lastIndexOf(' ');
    const own = row
      .slice(0, cut)
      .split(';')
      .filter((l) => l.startsWith('own_profiler.py:'));
    const key = own.length ? /:(\d+) /.exec(own[own.length - 1]!)![1]! : '-';
    by.set(key, (by.get(key) ?? 0) + Number(row.slice(cut + 1)));
  }
  return by;
}

const modes = [
  ['default', {}],
  ['profile callback', { HIGHWATER_STACKS: 'profile' }],
] as const;
const cases = pythons().flatMap((p) => modes.map(([mode, env]) => [p.version, mode, p.path, env] as const));

describe("a program's own profile function", () => {
  it.each(cases)('Python %s, %s', async (_version, mode, exe, env) => {
    const plain = spawnSync(exe, [program], { encoding: 'utf8' });
    expect(plain.status, plain.stderr).toBe(0);
    const r = await runProfiled(['--', exe, program], { env });
    expect(r.code, r.stderr).toBe(0);
    // Its profiler saw what it sees without highwater. Under the profile
    // callback, one more: the c_return of the sys.setprofile call that
    // replaced ours (a profile function was set when the call began).
    const events = (out: string) => Number(/events (\d+)/.exec(out)![1]);
    expect(events(r.stdout) - events(plain.stdout)).toBe(mode === 'default' ? 0 : 1);
    const by = bytesByLine(r.outDir);
    const ctypesLine = String(lineOf('# site: ctypes'));
    const bytearrayLine = String(lineOf('# site: bytearray'));
    const sites = 100 * MiB + 100 * 100001;
    if (mode === 'default') {
      // (Within 1 %: the list that holds them grows at the same lines.)
      expect(by.get(ctypesLine)! / (100 * MiB)).toBeCloseTo(1, 2);
      expect(by.get(bytearrayLine)! / (100 * 100001)).toBeCloseTo(1, 2);
    } else {
      // No line the program was not at: the sites' bytes are at a site or at
      // no line. The module's own lines before it installs its profiler ran
      // under ours and keep what they made (`import ctypes` can take a new
      // 1 MiB pymalloc arena on 3.13: 1 172 481 B at line 6, seen once in 4
      // runs); a line inside a function that has returned never shows.
      const installed = source.indexOf('start_profiling()') + 1;
      const setup = (l: string) => Number(l) < installed && /^\S/.test(source[Number(l) - 1] ?? '');
      const lines = [...by.entries()].filter(([, b]) => b >= MiB).map(([l]) => l);
      expect(
        lines.every((l) => l === ctypesLine || l === bytearrayLine || l === '-' || setup(l)),
        JSON.stringify([...by]),
      ).toBe(true);
      expect((by.get(ctypesLine) ?? 0) + (by.get(bytearrayLine) ?? 0) + (by.get('-') ?? 0)).toBeGreaterThanOrEqual(sites);
    }
  });
});
