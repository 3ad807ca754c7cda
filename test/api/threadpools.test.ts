// Thread pools under `highwater run` with the real libraries of Debian's
// python3: numexpr (python3-numexpr), threadpoolctl (python3-threadpoolctl)
// and OpenBLAS (libopenblas0-pthread; without it numpy uses the reference
// BLAS, which has no pool and threadpoolctl does not report). The pools start
// at their defaults, one thread with --limit-threads, and the program can
// always ask for more.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { bytesAtLine, expectNear, fixtures, lineOf, onlyReport, runProfiled } from '../helpers/cli.js';

const script = join(fixtures, 'api', 'threadpools_real.py');
const debianPython = '/usr/bin/python3';
const POOL_VARS = ['OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS', 'NUMEXPR_MAX_THREADS', 'BLOSC_NTHREADS'];

/** The environment of a user who set no pool size. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const v of POOL_VARS) delete env[v];
  delete env.HIGHWATER_LIMIT_THREADS;
  return env;
}

async function run(python: string, flags: string[], extra: NodeJS.ProcessEnv = {}) {
  const r = await runProfiled(['--', python, script], { flags, env: userEnv(extra) });
  expect(r.code, r.stderr).toBe(0);
  // numexpr prints "Error. nthreads cannot be larger than ..." when capped.
  expect(r.stderr).not.toMatch(/nthreads|Error\./);
  return { stdout: r.stdout, report: onlyReport(r.outDir) };
}

describe.skipIf(!existsSync(debianPython))('numexpr (Debian python3)', () => {
  it('--limit-threads starts numexpr with one thread; set_num_threads(2) still gives two, the line keeps its bytes', async () => {
    const { stdout, report } = await run(debianPython, ['--limit-threads']);
    expect(stdout).toMatch(/^numexpr \/usr\/lib\/python3\/dist-packages\/numexpr\//m);
    expect(stdout).toContain('threadpoolctl /usr/lib/python3/dist-packages/threadpoolctl.py');
    expect(stdout).toContain('numexpr threads 1\n');
    expect(stdout).toContain('numexpr set_num_threads(2) returned 1 now 2\n');
    expectNear(bytesAtLine(report, 'threadpools_real.py', lineOf(script, 'numexpr line')), 32_000_000);
  });

  it('by default leaves numexpr at its own default (one thread per core here, up to 8)', async () => {
    const { stdout } = await run(debianPython, []);
    const cores = Math.min((await import('node:os')).availableParallelism(), 8);
    expect(stdout).toContain(`numexpr threads ${cores}\n`);
    expect(stdout).toContain(`numexpr set_num_threads(2) returned ${cores} now 2\n`);
  });
});

describe.skipIf(!existsSync(debianPython))('OpenBLAS and OpenMP through threadpoolctl (Debian python3, libopenblas0-pthread, libgomp)', () => {
  it('--limit-threads starts OpenBLAS with one thread and threadpool_limits(2) still gives two', async () => {
    const { stdout } = await run(debianPython, ['--limit-threads']);
    expect(stdout).toContain('blas openblas 1\n');
    expect(stdout).toContain('blas under threadpool_limits(2) 2\n');
    // GNU OpenMP (libgomp): OMP_NUM_THREADS is a default too.
    expect(stdout).toContain('openmp 1\n');
    expect(stdout).toContain('openmp under threadpool_limits(2) 2\n');
  });

  it('by default OpenBLAS keeps its own default (every core)', async () => {
    const { stdout } = await run(debianPython, []);
    const cores = (await import('node:os')).availableParallelism();
    expect(stdout).toContain(`blas openblas ${cores}\n`);
    expect(stdout).toContain(`openmp ${cores}\n`);
  });
});
