/**
 * A real OOM whose peak came earlier (issue 11): in a real memory cgroup, a
 * program holds 250 MiB, frees it, holds 100 MiB, then asks for 450 MiB and
 * is stopped. The report must say what was live when it ran out (100 MiB at
 * `late`) first, the peak (250 MiB at `early`) second, and the 450 MiB
 * allocation at `trip`; so must the terminal summary.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { cgroupUnavailable, makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { MiB, cliPath, freshDir, pythonWithNumpy, readReport, repoRoot, reportDirs } from '../helpers/cli.js';

const unavailable = cgroupUnavailable();

const SCRIPT = [
  'import time',
  'MiB = 1024 * 1024',
  'def early():',
  '    return bytearray(250 * MiB)',
  'def late():',
  '    return bytearray(100 * MiB)',
  'def trip():',
  '    return bytearray(450 * MiB)',
  'a = early()',
  'time.sleep(0.3)',
  'del a',
  'time.sleep(0.3)',
  'b = late()',
  'time.sleep(0.3)',
  'c = trip()',
  'print("survived")',
  '',
].join('\n');

describe.skipIf(unavailable !== null)(`OOM report of a real OOM${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  afterEach(() => cg?.remove());

  test('live when it ran out first, the peak second, the tripping allocation; summary of the live lines', async () => {
    const made = makeCgroup(600 * MiB);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const dir = freshDir('hw-oom-page-');
    const script = join(dir, 'late_oom.py');
    writeFileSync(script, SCRIPT);
    const outDir = join(dir, 'out');
    const quoted = [process.execPath, cliPath, 'run', '-o', outDir, '--no-browser', '--', pythonWithNumpy(), script]
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
      .join(' ');
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('sh', ['-c', `${made.enterPrefix} ${quoted}`], {
        cwd: repoRoot,
        env: { ...process.env, DISPLAY: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r.code, r.stderr).toBe(53);
    expect(r.stdout).not.toContain('survived');
    const [reportDir] = reportDirs(outDir);
    const report = readReport(reportDir!);
    expect(report.trigger).toBe('oom');
    const own = (frames: { file: string; line: number }[]) => frames.filter((f) => f.file === script).at(-1)!.line;
    // The peak: 250 MiB at line 4 (early), freed since.
    expect(own(report.stacks[0]!.frames)).toBe(4);
    expect(Math.abs(report.stacks[0]!.bytes - 250 * MiB)).toBeLessThan(MiB);
    // When it ran out: 100 MiB at line 6 (late); early's memory is not live.
    expect(own(report.oomStacks![0]!.frames)).toBe(6);
    expect(Math.abs(report.oomStacks![0]!.bytes - 100 * MiB)).toBeLessThan(MiB);
    expect(report.oomStacks!.some((s) => s.frames.some((f) => f.file === script && f.line === 4))).toBe(false);
    // The allocation that tripped it: 450 MiB at line 8 (trip).
    expect(report.oomAllocation!.bytes).toBe(450 * MiB + 1); // bytearray keeps a trailing NUL
    expect(own(report.oomAllocation!.frames)).toBe(8);

    const html = readFileSync(join(reportDir!, 'index.html'), 'utf8');
    const live = html.indexOf('<section id="live">');
    const peak = html.indexOf('<section id="peak">');
    expect(live).toBeGreaterThan(0);
    expect(peak).toBeGreaterThan(live);
    expect(html.slice(live, peak)).toMatch(/late_oom\.py:6<\/span><\/td><td><code>late<\/code>/);
    expect(html.slice(peak)).toMatch(/late_oom\.py:4<\/span><\/td><td><code>early<\/code>/);
    expect(html).toMatch(/<p id="oom-allocation">450\.0 MiB requested at <span class="loc" title="[^"]*late_oom\.py:8">late_oom\.py:8<\/span>/);
    expect(html).toContain('<g id="tl-oom"');

    const lines = r.stderr.split('\n');
    const at = lines.indexOf('highwater: top lines live when it ran out:');
    expect(at, r.stderr).toBeGreaterThan(0);
    expect(lines[at + 1]).toMatch(/^highwater: +100\.0 MiB +late_oom\.py:6 +late +return bytearray\(100 \* MiB\)$/);
  }, 60_000);
});
