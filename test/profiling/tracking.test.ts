// What the shim tracks, checked end to end: real CLI, real Python, real
// native code, bytes asserted at named lines (±5 %).
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { MiB, bytesAtLine, expectNear, fixtures, lineOf, onlyReport, runProfiled } from '../helpers/cli.js';
import { buildTestLib } from '../helpers/native.js';

const py = (name: string) => join(fixtures, 'python', name);
// Markers are matched with their '# ' so 'memalign line' is not found in 'posix_memalign line'.
const at = (name: string, marker: string) => lineOf(py(name), `# ${marker}`);

describe('tracking', () => {
  let cLib = '';
  let cppLib = '';
  beforeAll(() => {
    cLib = buildTestLib('hwtest');
    cppLib = buildTestLib('hwtest_cpp');
  });

  it('gives each Python thread its own stack', async () => {
    const r = await runProfiled([py('threads.py')]);
    expect(r.code, r.stderr).toBe(0);
    const rep = onlyReport(r.outDir);
    expectNear(bytesAtLine(rep, 'threads.py', at('threads.py', 'thread A line')), 30 * MiB);
    expectNear(bytesAtLine(rep, 'threads.py', at('threads.py', 'thread B line')), 20 * MiB);
    expectNear(bytesAtLine(rep, 'threads.py', at('threads.py', 'main thread line')), 10 * MiB);
    const a = rep.stacks.find((s) => s.frames.some((f) => f.function === 'leak_a'))!;
    expect(a.frames.map((f) => f.function)).not.toContain('<module>');
  });

  it('charges a C thread to the Python line that started it', async () => {
    const r = await runProfiled([py('c_thread.py'), cLib]);
    expect(r.code, r.stderr).toBe(0);
    expectNear(bytesAtLine(onlyReport(r.outDir), 'c_thread.py', at('c_thread.py', 'C thread started here')), 40 * MiB);
  });

  it('tracks every malloc-family function resolved through the global namespace', async () => {
    const r = await runProfiled([py('malloc_family.py')]);
    expect(r.code, r.stderr).toBe(0);
    const rep = onlyReport(r.outDir);
    const expected: [string, number][] = [
      ['malloc line', 11],
      ['calloc line', 12],
      ['realloc line', 13],
      ['posix_memalign line', 14],
      ['aligned_alloc line', 15],
      ['memalign line', 16],
      ['valloc line', 17],
      ['pvalloc line', 18],
      ['reallocarray line', 19],
      // Freed after the peak: still part of the peak, which came first.
      ['freed line', 50],
    ];
    for (const [marker, mib] of expected) {
      expectNear(bytesAtLine(rep, 'malloc_family.py', at('malloc_family.py', marker)), mib * MiB);
    }
  });

  it('tracks C++ new from a library the test compiles', async () => {
    const r = await runProfiled([py('cpp_new.py'), cppLib]);
    expect(r.code, r.stderr).toBe(0);
    expectNear(bytesAtLine(onlyReport(r.outDir), 'cpp_new.py', at('cpp_new.py', 'cpp new line')), 33 * MiB);
  });

  it('tracks anonymous mmap, a partial munmap and mremap', async () => {
    const r = await runProfiled([py('mmaps.py')]);
    expect(r.code, r.stderr).toBe(0);
    const rep = onlyReport(r.outDir);
    // 40 MiB mapped, a 10 MiB hole punched before the peak: 30 MiB stay.
    expectNear(bytesAtLine(rep, 'mmaps.py', at('mmaps.py', 'mmap 40 line')), 30 * MiB);
    // 8 MiB grown to 24 MiB by mremap: charged to the mremap line.
    expectNear(bytesAtLine(rep, 'mmaps.py', at('mmaps.py', 'mremap line')), 24 * MiB);
    expect(bytesAtLine(rep, 'mmaps.py', at('mmaps.py', 'mmap 8 line'))).toBe(0);
    expectNear(rep.peakBytes, 70 * MiB, 0.1);
  });

  it('keeps a forked child and subprocesses working; with --no-children no child sees the shim', async () => {
    // Children tracked (the default, issue 12): the shell inherits the
    // library, dormant in a process that is not Python (docs/multiprocess.md).
    const r = await runProfiled([py('forks.py')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('fork child exit 7');
    expect(r.stdout).toMatch(/^sub:.*libhighwater\.so.*:end$/m);
    expect(r.stdout).toContain('python child ok 0');
    expectNear(bytesAtLine(onlyReport(r.outDir), 'forks.py', at('forks.py', 'parent line')), 25 * MiB);

    const off = await runProfiled([py('forks.py')], { flags: ['--no-children'] });
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout).toContain('fork child exit 7');
    expect(off.stdout).toContain('sub::end'); // LD_PRELOAD not inherited
    expect(off.stdout).toContain('python child ok 0');
    expectNear(bytesAtLine(onlyReport(off.outDir), 'forks.py', at('forks.py', 'parent line')), 25 * MiB);
  });
});
