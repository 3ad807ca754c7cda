/**
 * `highwater diff`: the pure comparison, and the real CLI on two reports of
 * real runs of one program whose one line grows (its text and exit codes).
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { diffReports, diffText, signedPercent } from '../../sidecar/src/report/diff.js';
import type { Stack } from '../../sidecar/src/report/model.js';
import { runCli } from '../helpers/cli.js';
import { twoRuns } from './diff-runs.js';

const f = (line: number, fn: string, code = '') => ({ file: '/app/job.py', line, function: fn, code });

describe('diffReports (pure)', () => {
  test('lines match by file name, line and function; largest change first; unchanged lines left out', () => {
    const mod = f(9, '<module>');
    const old: Stack[] = [
      { bytes: 100, frames: [mod, f(3, 'load')] },
      { bytes: 50, frames: [mod, f(5, 'keep')] },
      { bytes: 30, frames: [{ ...mod, file: '/other/machine/job.py' }, f(7, 'gone')] },
    ];
    const neu: Stack[] = [
      { bytes: 400, frames: [mod, f(3, 'load')] },
      { bytes: 50, frames: [mod, f(5, 'keep')] },
      { bytes: 10, frames: [mod, f(8, 'fresh')] },
    ];
    const d = diffReports({ peakBytes: 180, stacks: old }, { peakBytes: 460, stacks: neu });
    expect(d.lines.map((l) => [l.frame.line, l.oldBytes, l.newBytes])).toEqual([
      [3, 100, 400],
      [7, 30, 0],
      [8, 0, 10],
    ]);
    const text = diffText(d);
    expect(text[0]).toBe('peak: 180 B \u2192 460 B (+280 B, +155.56%)');
    expect(text[2]).toMatch(/^ +\+300 B +\+300\.00% +100 B \u2192 400 B +job\.py:3 +load$/);
    expect(text[3]).toMatch(/-30 B +gone .*job\.py:7 +gone/);
    expect(text[4]).toMatch(/\+10 B +new .*job\.py:8 +fresh/);
    expect(signedPercent(0, 0)).toBe('+0.00%');
  });
});

describe('highwater diff (real CLI, real runs)', () => {
  let runs: { old: string; new: string; dir: string };
  beforeAll(async () => {
    runs = await twoRuns();
  }, 120_000);

  test('prints the peak change and the grown line first; writes the page; exit 0', async () => {
    const page = join(runs.dir, 'diff.html');
    const r = await runCli(['diff', runs.old, join(runs.new, 'report.json'), '-o', page]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    // The peaks differ by the 100 MiB that line 6 grew (plus interpreter noise well under 1 MiB).
    const m = /^peak: ([\d.]+) MiB \u2192 ([\d.]+) MiB \(\+(\d+\.\d) MiB, \+(\d+\.\d\d)%\)$/.exec(lines[0]!)!;
    expect(m, lines[0]).not.toBeNull();
    expect(Math.abs(Number(m[3]) - 100)).toBeLessThan(1);
    expect(lines[1]).toMatch(/^lines that changed most/);
    expect(lines[2]).toMatch(/^ +\+100\.0 MiB +\+200\.0\d% +50\.0 MiB \u2192 150\.0 MiB +grow\.py:6 +grows +return bytearray\(n \* MiB\)$/);
    // Line 4 (40 MiB both times) did not change: it is not listed.
    expect(r.stdout).not.toMatch(/grow\.py:4 /);
    expect(lines).toContain(`differential flamegraph: ${page}`);
    expect(readFileSync(page, 'utf8')).toContain('<table id="changed-lines">');
  });

  test('--fail-if-peak-grows: 1 when the peak grew by more than PCT, 0 otherwise', async () => {
    const out = join(runs.dir, 'x.html');
    const grew = await runCli(['diff', runs.old, runs.new, '-o', out, '--fail-if-peak-grows', '10']);
    expect(grew.code, grew.stderr).toBe(1);
    expect(grew.stdout).toMatch(/the peak grew by \d+\.\d\d%, more than --fail-if-peak-grows 10%: exit 1/);
    expect((await runCli(['diff', runs.old, runs.new, '-o', out, '--fail-if-peak-grows=500%'])).code).toBe(0);
    // Shrinking never fails.
    expect((await runCli(['diff', runs.new, runs.old, '-o', out, '--fail-if-peak-grows', '0'])).code).toBe(0);
  });

  test('usage errors and unreadable reports exit 2 with a message naming the problem', async () => {
    const out = join(runs.dir, 'y.html');
    const one = await runCli(['diff', runs.old]);
    expect(one.code).toBe(2);
    expect(one.stderr).toContain('highwater diff: takes exactly two reports, OLD and NEW (got 1)');
    const pct = await runCli(['diff', runs.old, runs.new, '--fail-if-peak-grows', 'lots']);
    expect(pct.code).toBe(2);
    expect(pct.stderr).toContain('--fail-if-peak-grows takes a percentage >= 0 (got "lots")');
    const notJson = join(runs.dir, 'bad.json');
    writeFileSync(notJson, '{"version": 1, "peakBytes": 5, "stacks": [{"bytes": "x"}]}');
    const bad = await runCli(['diff', notJson, runs.new, '-o', out]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${notJson}: stack 0 is not {bytes, frames: [{file, line, function, code}]}`);
    const link = join(runs.dir, 'link');
    mkdirSync(link);
    symlinkSync(join(runs.old, 'report.json'), join(link, 'report.json'));
    const sym = await runCli(['diff', link, runs.new, '-o', out]);
    expect(sym.code).toBe(2);
    expect(sym.stderr).toContain('is a symbolic link');
  });
});
