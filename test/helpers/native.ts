/** Compiles the tests' small native libraries once per run. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, repoRoot } from './cli.js';

const outDir = join(repoRoot, 'native', 'build', 'test');

export function buildTestLib(name: 'hwtest' | 'hwtest_cpp'): string {
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `lib${name}.so`);
  if (existsSync(out)) return out;
  const src = join(fixtures, 'native', name === 'hwtest' ? 'hwtest.c' : 'hwtest_cpp.cpp');
  const compiler = name === 'hwtest' ? 'cc' : 'c++';
  execFileSync(compiler, ['-shared', '-fPIC', '-O1', '-o', out, src, '-lpthread']);
  return out;
}
