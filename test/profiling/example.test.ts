// The product's hello world: the seed example must name its lines and bytes.
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, bytesAtLine, expectNear, onlyReport, pythonWithNumpy, repoRoot, reportDirs, runProfiled } from '../helpers/cli.js';

const example = join(repoRoot, 'examples', 'example.py');

describe('highwater run examples/example.py', () => {
  it('reports 400 MiB at make_big_array line 4 and 80 MiB at lines 7 and 8', async () => {
    const r = await runProfiled(['--', pythonWithNumpy(), example]);
    expect(r.code, r.stderr).toBe(0);
    const dir = reportDirs(r.outDir)[0]!;
    expect(r.stderr).toContain(`highwater: report written to ${join(dir, 'index.html')}`);
    const report = onlyReport(r.outDir);
    expect(report.trigger).toBe('exit');
    expectNear(bytesAtLine(report, 'example.py', 4), 400 * MiB);
    expectNear(bytesAtLine(report, 'example.py', 7), 80 * MiB);
    expectNear(bytesAtLine(report, 'example.py', 8), 80 * MiB);
    // numpy and the interpreter add a little; the arrays are the 560 MiB.
    expect(report.peakBytes).toBeGreaterThan(560 * MiB * 0.98);
    expect(report.peakBytes).toBeLessThan(560 * MiB * 1.15);

    const biggest = report.stacks[0]!;
    const tail = biggest.frames.slice(-3).map((f) => [f.function, f.line, f.code]);
    expect(tail).toEqual([
      ['<module>', 15, 'main()'],
      ['main', 13, 'another_arr = make_big_array()'],
      ['make_big_array', 4, 'return np.zeros((1024, 1024, 50))'],
    ]);
    const covered = report.stacks.reduce((a, s) => a + s.bytes, 0);
    expect(covered / report.peakBytes).toBeGreaterThanOrEqual(0.99);

    for (const f of ['index.html', 'peak-memory.svg', 'peak-memory-reversed.svg', 'peak-memory.folded']) {
      expect(existsSync(join(dir, f)), f).toBe(true);
      expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    }
    expect(readFileSync(join(dir, 'peak-memory.svg'), 'utf8')).toContain('return np.zeros((1024, 1024, 50))');
    // Timestamped sub-directory without ':' or '.'.
    expect(dir.slice(r.outDir.length + 1)).not.toMatch(/[:.]/);
  });

  it('runs a script path directly with the default python3', async () => {
    const r = await runProfiled([example], { env: { HIGHWATER_PYTHON: pythonWithNumpy() } });
    expect(r.code, r.stderr).toBe(0);
    expectNear(bytesAtLine(onlyReport(r.outDir), 'example.py', 4), 400 * MiB);
  });
});
