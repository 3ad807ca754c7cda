/** Two real runs of one program whose line 6 grows from 50 to 150 MiB (diff tests). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { freshDir, reportDirs, runProfiled } from '../helpers/cli.js';

export const GROW_PY = [
  'import sys',
  'MiB = 1024 * 1024',
  'def fixed():',
  '    return bytearray(40 * MiB)',
  'def grows(n):',
  '    return bytearray(n * MiB)',
  'a = fixed()',
  'b = grows(int(sys.argv[1]))',
  '',
].join('\n');

/** Reports of grow.py with 50 and 150 MiB at line 6. */
export async function twoRuns(): Promise<{ old: string; new: string; dir: string }> {
  const dir = freshDir('hw-diff-');
  const script = join(dir, 'grow.py');
  writeFileSync(script, GROW_PY);
  const a = await runProfiled([script, '50']);
  const b = await runProfiled([script, '150']);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
  return { old: reportDirs(a.outDir)[0]!, new: reportDirs(b.outDir)[0]!, dir };
}
