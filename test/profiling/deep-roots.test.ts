// A stack deeper than the shim records: the 3.11+ walk keeps 1 024 frames and
// a dump 2 048 (docs/report.md "Limits"). Such a stack used to keep only its
// innermost frames: the report's root was a frame deep inside the recursion,
// and the module line that started it, which tells one recursion from
// another, was gone. Now the outermost frames are kept too, with a marker
// frame for the ones not recorded. Each recursion's bytes must be at the
// module line that called it and at the leaf line, on every CPython found,
// exact, sampled and through the profile callback.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixtures, lineOf, MiB, pythons, readReport, reportDirs, runProfiled } from '../helpers/cli.js';

const program = join(fixtures, 'python', 'deep_roots.py');
const file = 'deep_roots.py';
const leaf = lineOf(program, '# LEAF');
const roots = [
  { line: lineOf(program, '# SHALLOW'), mib: 3, depth: 302 },
  { line: lineOf(program, '# PAST-WALK'), mib: 5, depth: 1502 },
  { line: lineOf(program, '# PAST-DUMP'), mib: 7, depth: 3002 },
];
const NOT_RECORDED = '[frames not recorded]';

const modes = [
  ['exact', [], {}],
  ['sampled', ['--sample-rate', '1'], {}],
  ['profile callback', [], { HIGHWATER_STACKS: 'profile' }],
] as const;
const cases = pythons().flatMap((p) => modes.map(([mode, flags, env]) => [p.version, mode, p.path, flags, env] as const));

describe('stacks deeper than the shim records keep their root', () => {
  it.each(cases)('Python %s, %s', async (_version, _mode, exe, flags, env) => {
    const r = await runProfiled(['--', exe, program], { flags: [...flags], env: { ...env }, timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const report = readReport(reportDirs(r.outDir)[0]!);
    const own = (f: { file: string } | undefined) => f !== undefined && f.file.endsWith(`/${file}`);
    for (const root of roots) {
      const where = `the recursion of line ${root.line}`;
      // Its block: at the module line that started it, and at the leaf line
      // under rec (the recursion's frames themselves, charged to the line
      // that calls rec, are the program's too but not this block).
      const stacks = report.stacks.filter((s) => s.frames[0] && own(s.frames[0]) && s.frames[0].line === root.line);
      expect(stacks[0]?.frames[0]!.function, where).toBe('<module>');
      const atLeaf = stacks.filter((s) => own(s.frames.at(-1)!) && s.frames.at(-1)!.line === leaf && s.frames.at(-1)!.function === 'rec');
      const bytes = atLeaf.reduce((a, s) => a + s.bytes, 0);
      expect(bytes, where).toBeGreaterThanOrEqual(root.mib * MiB);
      expect(bytes, where).toBeLessThan(root.mib * MiB + 4096);
      // Nothing of it lost to another root.
      const leafBytes = report.stacks.filter((s) => own(s.frames.at(-1)!) && s.frames.at(-1)!.line === leaf).reduce((a, s) => a + s.bytes, 0);
      expect(leafBytes).toBeLessThan(roots.reduce((a, x) => a + x.mib, 0) * MiB + 3 * 4096);
      // Past what a dump holds, the frames left out are said.
      if (root.depth > 2048)
        expect(
          atLeaf[0]!.frames.some((f) => f.function === NOT_RECORDED),
          where,
        ).toBe(true);
      if (root.depth < 1024)
        expect(
          atLeaf[0]!.frames.some((f) => f.function === NOT_RECORDED),
          where,
        ).toBe(false);
    }
  });
});
