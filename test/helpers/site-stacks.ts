/**
 * For the line tests whose program records, at each allocation, the line of
 * every frame of its own file (test/fixtures/python/deep_lines.py,
 * chunk_drops.py): the bytes the report gives each such stack, and the
 * stacks that differ from what the program recorded.
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { reportDirs } from './cli.js';

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
 * mmap to that line; the program cannot see it: up to `maxArenas` in all.
 */
export function wrongStacks(expected: Map<string, number>, got: Map<string, number>, arena: number): { wrong: string[]; arenas: number } {
  const wrong: string[] = [];
  let arenas = 0;
  for (const [stack, bytes] of expected) {
    let b = got.get(stack) ?? 0;
    while (b - bytes >= arena) {
      b -= arena;
      arenas++;
    }
    if (!(b >= bytes * 0.95 && b <= bytes * 1.05)) wrong.push(`${stack}: ${b} B, expected ${bytes} B`);
  }
  for (const [stack, bytes] of got) if (!expected.has(stack)) wrong.push(`${stack}: ${bytes} B, a stack the program never had`);
  return { wrong, arenas };
}
