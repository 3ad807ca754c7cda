/** Compiles the tests' small native libraries once per run. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, repoRoot } from './cli.js';

const outDir = join(repoRoot, 'native', 'build', 'test');

const sources = {
  hwtest: 'hwtest.c',
  hwtest_cpp: 'hwtest_cpp.cpp',
  block_open: 'block_open.c',
  pool_arena: 'pool_arena.c',
  cache1_arena: 'cache1_arena.c',
  fresh_chain: 'fresh_chain.c',
} as const;

export function buildTestLib(name: keyof typeof sources): string {
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, `lib${name}.so`);
  if (existsSync(out)) return out;
  const src = join(fixtures, 'native', sources[name]);
  const compiler = name === 'hwtest_cpp' ? 'c++' : 'cc';
  execFileSync(compiler, ['-shared', '-fPIC', '-O1', '-o', out, src, '-lpthread']);
  return out;
}
