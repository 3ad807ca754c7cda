/**
 * Rendering is bounded whatever the input (issue 8 item 7): small files that
 * describe huge profiles go through the real CLI, whose peak RSS is measured
 * with /usr/bin/time, and the output sizes are checked; the line that
 * allocated stays in the report with its exact bytes.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { KEEP_INNER, KEEP_OUTER, MAX_DEPTH, MAX_STACKS } from '../../sidecar/src/report/stacks.js';
import { cliPath, freshDir, readReport, repoRoot } from '../helpers/cli.js';
import { completeReports } from '../watcher/processes.js';
import { deepDump, deepStateFile, writeManyStacksDump } from './hostile-inputs.js';

const MiB = 1024 * 1024;

/** `highwater <args>` under /usr/bin/time: exit code, stderr and the peak RSS in bytes. */
function timedCli(args: string[]): Promise<{ code: number | null; stderr: string; maxRss: number }> {
  const timeOut = join(freshDir('hw-time-'), 'rss');
  return new Promise((resolve) => {
    execFile('/usr/bin/time', ['-f', '%M', '-o', timeOut, process.execPath, cliPath, ...args], { cwd: repoRoot, maxBuffer: 1 << 24 }, (err, _out, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? null) : 0;
      resolve({ code: typeof code === 'number' ? code : null, stderr, maxRss: Number(readFileSync(timeOut, 'utf8').trim().split('\n').pop()) * 1024 });
    });
  });
}

function sizes(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of ['peak-memory.svg', 'peak-memory-reversed.svg', 'report.json', 'peak-memory.folded', 'index.html']) out[f] = statSync(join(dir, f)).size;
  return out;
}

describe('bounded rendering (measured on a loaded 2-core machine)', () => {
  it('a 100 000-frame stack: folded to 200 frames, the allocating line kept with its bytes, small SVGs, bounded RSS', async () => {
    const dir = freshDir('hw-deep-');
    const dump = join(dir, 'deep.dump');
    writeFileSync(dump, deepDump(100_000, 64 * MiB));
    const out = freshDir('hw-out-');
    const r = await timedCli(['render', dump, '-o', out, '--no-timestamp']);
    expect(r.code, r.stderr).toBe(0);
    const report: ReportJson = readReport(out);
    expect(report.stacks).toHaveLength(1);
    const frames = report.stacks[0]!.frames;
    expect(frames).toHaveLength(MAX_DEPTH);
    // Outermost frames, the marker, then the innermost frames ending at the allocating line.
    expect(frames[0]!.line).toBe(1);
    expect(frames[KEEP_OUTER - 1]!.line).toBe(KEEP_OUTER);
    expect(frames[KEEP_OUTER]!.function).toBe(`[${100_000 - KEEP_OUTER - KEEP_INNER} frames folded]`);
    expect(frames.at(-1)!.line).toBe(100_000);
    expect(report.stacks[0]!.bytes).toBe(64 * MiB);
    expect(report.truncation).toEqual({
      foldedStacks: 1,
      foldedFrames: 100_000 - KEEP_OUTER - KEEP_INNER,
      otherStacks: 0,
      otherBytes: 0,
      maxDepth: MAX_DEPTH,
      maxStacks: MAX_STACKS,
    });
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('id="truncation"');
    const s = sizes(out);
    console.log(`100 000-frame dump (${statSync(dump).size} bytes): max RSS ${(r.maxRss / MiB).toFixed(0)} MiB, sizes ${JSON.stringify(s)}`);
    expect(s['peak-memory.svg']).toBeLessThan(1 * MiB);
    expect(s['peak-memory-reversed.svg']).toBeLessThan(1 * MiB);
    expect(r.maxRss).toBeLessThan(300 * MiB);
  }, 120_000);

  it('a million distinct stacks: the 99 999 largest kept, the rest merged into one stack, every byte accounted for, bounded RSS', async () => {
    const dir = freshDir('hw-many-');
    const dump = join(dir, 'many.dump');
    const total = writeManyStacksDump(dump, 1_000_000);
    const out = freshDir('hw-out-');
    const r = await timedCli(['render', dump, '-o', out, '--no-timestamp']);
    expect(r.code, r.stderr).toBe(0);
    const report: ReportJson = readReport(out);
    const t = report.truncation!;
    expect(t.otherStacks).toBe(1_000_000 - (MAX_STACKS - 1));
    // The merged ones are exactly the smallest: stacks 0 .. 900 000 hold 1000 + i bytes each.
    const n = t.otherStacks;
    expect(t.otherBytes).toBe(1000 * n + (n * (n - 1)) / 2);
    // Largest first: the merged stack (it holds most of the memory), then the
    // largest real stack, the last one written, at its own line.
    expect(report.stacks[0]).toEqual({ bytes: t.otherBytes, frames: [{ file: '', line: 0, function: `[${n} smaller stacks merged]`, code: '' }] });
    expect(report.stacks[1]!.bytes).toBe(1000 + 999_999);
    expect(report.stacks[1]!.frames.at(-1)!.line).toBe(1_000_000);
    const folded = readFileSync(join(out, 'peak-memory.folded'), 'utf8').trimEnd().split('\n');
    expect(folded).toHaveLength(MAX_STACKS);
    expect(folded.reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)).toBe(total);
    const s = sizes(out);
    console.log(`1 M stacks dump (${(statSync(dump).size / MiB).toFixed(0)} MiB): max RSS ${(r.maxRss / MiB).toFixed(0)} MiB, sizes ${JSON.stringify(s)}`);
    expect(s['peak-memory.svg']).toBeLessThan(8 * MiB);
    expect(r.maxRss).toBeLessThan(800 * MiB);
  }, 300_000);

  it('a state file with a 2 000-frame chain of distinct lines: post-mortem folded, in bounded RSS', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const pid = 2_999_998;
    writeFileSync(join(runDir, `hw-${pid}.state`), deepStateFile(2000, 32 * MiB, pid));
    const r = await timedCli(['watch', '--once', '--run-dir', runDir, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const [dir] = completeReports(out);
    const report = readReport(dir!);
    expect(report.stacks[0]!.frames).toHaveLength(MAX_DEPTH);
    expect(report.stacks[0]!.frames.at(-1)!.line).toBe(2000);
    expect(report.stacks[0]!.bytes).toBe(32 * MiB);
    expect(report.truncation?.foldedStacks).toBe(1);
    console.log(`2 000-frame state file: max RSS ${(r.maxRss / MiB).toFixed(0)} MiB, sizes ${JSON.stringify(sizes(dir!))}`);
    expect(r.maxRss).toBeLessThan(300 * MiB);
  }, 120_000);
});
