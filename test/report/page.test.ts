/**
 * What index.html and report.json say for an OOM whose peak came earlier,
 * the timeline from a dump and from a state file after SIGKILL, and the
 * top-lines helpers behind the page and the terminal summary.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parseDump } from '../../sidecar/src/report/dump.js';
import { foldImportMachinery } from '../../sidecar/src/report/frames.js';
import type { Stack } from '../../sidecar/src/report/model.js';
import { renderReport } from '../../sidecar/src/report/render.js';
import { buildTree } from '../../sidecar/src/report/stacks.js';
import { locate, reportSummaryLines, topLines } from '../../sidecar/src/report/toplines.js';
import { freshDir, MiB, readReport, reportDirs, runProfiled } from '../helpers/cli.js';

/** Peak: 3 GiB at line 4 (freed since); when it ran out: 1 GiB at line 7, and 8 GiB asked at line 8. */
const OOM_LATE = [
  '{"type":"header","format":"highwater-dump","version":1,"pid":7,"trigger":"oom","oomReason":"low-available","timeMs":1764035003000,"python":"3.12.1","argv":["python","job.py"],"cwd":"/app","peakBytes":3221225472,"memory":{"source":"cgroup-v2","limitBytes":4294967296,"workingSetBytes":1200000000,"availableBytes":90000000,"swapBytes":0,"floorBytes":104857600}}',
  '{"type":"func","id":1,"file":"/app/job.py","name":"<module>"}',
  '{"type":"func","id":2,"file":"/app/job.py","name":"early"}',
  '{"type":"func","id":3,"file":"/app/job.py","name":"late"}',
  '{"type":"stack","snapshot":"peak","bytes":3221225472,"frames":[[1,10],[2,4]]}',
  '{"type":"stack","snapshot":"current","bytes":1073741824,"frames":[[1,11],[3,7]]}',
  '{"type":"oomAllocation","bytes":8589934592,"frames":[[1,11],[3,8]]}',
  '{"type":"timeline","intervalMs":50,"peakMs":1764035001000,"peakBytes":3221225472,"samples":[[1764035000000,0,0,4294967296,104857600],[1764035001000,3221225472,3300000000,4294967296,104857600],[1764035002000,1073741824,1200000000,4294967296,104857600],[1764035003000,1073741824,1200000000,4294967296,104857600]]}',
  '{"type":"source","file":"/app/job.py","line":4,"text":"    big = load_everything()"}',
  '{"type":"source","file":"/app/job.py","line":7,"text":"\\tpart = load_part()"}',
  '{"type":"source","file":"/app/job.py","line":8,"text":"    huge = bytearray(8 << 30)"}',
  '{"type":"end","funcs":3,"stacks":2,"sources":3}',
  '',
].join('\n');

describe('OOM report whose peak came earlier', () => {
  test('report.json: stacks = the peak, oomStacks = live when it ran out, the timeline', async () => {
    const { dir, report } = await renderReport(parseDump(OOM_LATE), freshDir());
    expect(report.stacks.map((s) => [s.bytes, s.frames.at(-1)!.line])).toEqual([[3221225472, 4]]);
    expect(report.oomStacks!.map((s) => [s.bytes, s.frames.at(-1)!.line])).toEqual([[1073741824, 7]]);
    expect(report.oomStacks![0]!.frames[1]).toEqual({ file: '/app/job.py', line: 7, function: 'late', code: 'part = load_part()', indent: 4 });
    expect(report.timeline!.samples).toHaveLength(4);
    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(json.oomStacks).toEqual(report.oomStacks);
    expect(json.timeline).toEqual(report.timeline);
  });

  test('index.html: "live when it ran out" first, then "at the peak", the tripping allocation, both marks', async () => {
    const { dir } = await renderReport(parseDump(OOM_LATE), freshDir());
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    const live = html.indexOf('<section id="live"><h2>Live when it ran out: 1.0 GiB</h2>');
    const peak = html.indexOf('<section id="peak"><h2>At the peak: 3.0 GiB</h2>');
    expect(live).toBeGreaterThan(0);
    expect(peak).toBeGreaterThan(live);
    expect(html.slice(live, peak)).toContain('job.py:7</span>');
    expect(html.slice(live, peak)).not.toContain('job.py:4</span>');
    expect(html).toMatch(/The line holding the most when it ran out: <b><span class="loc" title="\/app\/job\.py:7">job\.py:7<\/span><\/b>/);
    expect(html).toMatch(/<p id="oom-allocation">8\.0 GiB requested at <span class="loc" title="\/app\/job\.py:8">job\.py:8<\/span> <code>late<\/code>/);
    // Tables show the trimmed line; tabs become 4 spaces in the tooltip (and under flamegraph frames).
    expect(html).toContain('<code class="src" title="    part = load_part()">part = load_part()</code>');
    // Timeline: the peak 1 s after the first sample, the OOM at the dump time (3 s).
    expect(html).toMatch(/<g id="tl-peak" class="mk peak" data-t="1000">/);
    expect(html).toMatch(/<g id="tl-oom" class="mk oom" data-t="3000">/);
    // Both flamegraphs of both moments are in the page.
    for (const id of ['fg-live', 'fg-live-rev', 'fg-peak', 'fg-peak-rev']) expect(html).toMatch(new RegExp(`<iframe class="fg( near)?" id="${id}"`));
    expect(html.indexOf('id="fg-live"')).toBeLessThan(html.indexOf('id="fg-peak"'));
  });
});

describe('top lines', () => {
  const mod = { file: '/app/run.py', line: 2, function: '<module>', code: 'import numpy' };
  const boot = { file: '<frozen importlib._bootstrap>', line: 1027, function: '_find_and_load', code: '' };
  const np = { file: '/usr/lib/python3/dist-packages/numpy/__init__.py', line: 130, function: '<module>', code: 'from . import core' };
  const main = { file: '/app/run.py', line: 9, function: 'main', code: 'x = np.ones(n)' };
  const ones = { file: '/usr/lib/python3/dist-packages/numpy/core/numeric.py', line: 204, function: 'ones', code: 'a = empty(shape)' };
  const stacks: Stack[] = [
    { bytes: 30, frames: [mod, boot, boot, np] },
    { bytes: 100, frames: [main, ones] },
    { bytes: 5, frames: [mod, boot, np] },
  ];

  test('own-code frame per line, library frames below charged to it, summed over paths', () => {
    const rows = topLines(stacks, 10);
    expect(rows.map((r) => [r.frame.line, r.bytes, r.paths])).toEqual([
      [9, 100, 1],
      [2, 35, 2],
    ]);
    expect(rows[0]!.below).toEqual([ones]);
  });

  test('import machinery folds out; the memory stays with the import line', () => {
    const folded = foldImportMachinery(stacks);
    expect(folded[0]!.frames).toEqual([mod, np]);
    expect(folded.reduce((a, s) => a + s.bytes, 0)).toBe(135);
  });

  test('locate finds a line in the flamegraph tree by offset and depth', () => {
    const tree = buildTree(foldImportMachinery(stacks));
    expect(locate(tree, [main])).toEqual({ x: 0, d: 1 });
    expect(locate(tree, [mod, np])).toEqual({ x: 100, d: 2 });
    expect(locate(tree, [{ ...main, line: 99 }])).toBeNull();
  });

  test('summary text: heading, bytes, file:line, function, source; control characters cleaned', () => {
    const evil = { ...main, code: 'x = "\u001b[31mred"' };
    expect(reportSummaryLines({ stacks: [{ bytes: 3 * MiB, frames: [evil] }] })).toEqual([
      'top lines at the peak:',
      '  3.0 MiB  run.py:9  main  x = " [31mred"',
    ]);
    expect(reportSummaryLines({ stacks: [], oomStacks: [] })).toEqual([]);
  });
});

describe('the CLI', () => {
  test('highwater run prints the top 3 lines after the report path; a SIGKILLed run keeps its timeline', async () => {
    const ex = await runProfiled(['examples/example.py']);
    expect(ex.code, ex.stderr).toBe(0);
    const lines = ex.stderr.split('\n');
    const at = lines.findIndex((l) => l.startsWith('highwater: report written to '));
    expect(lines.slice(at + 1, at + 5)).toEqual([
      'highwater: top lines at the peak:',
      'highwater:   400.0 MiB  example.py:4  make_big_array   return np.zeros((1024, 1024, 50))',
      'highwater:    80.0 MiB  example.py:7  make_two_arrays  arr1 = np.zeros((1024, 1024, 10))',
      'highwater:    80.0 MiB  example.py:8  make_two_arrays  arr2 = np.ones((1024, 1024, 10))',
    ]);

    // Post-mortem: the state file's timeline is the only one there is.
    const script = join(freshDir('hw-kill-'), 'killed.py');
    writeFileSync(script, 'import os, signal, time\nbuf = bytearray(64 << 20)\ntime.sleep(0.6)\nos.kill(os.getpid(), signal.SIGKILL)\n');
    const k = await runProfiled([script]);
    expect(k.code).toBe(137);
    const report = readReport(reportDirs(k.outDir)[0]!);
    expect(report.trigger).toBe('killed');
    const tl = report.timeline!;
    expect(tl.samples.length).toBeGreaterThan(2);
    expect(Math.max(...tl.samples.map((s) => s[1]))).toBeGreaterThanOrEqual(64 * MiB);
    expect(tl.peakBytes).toBe(report.peakBytes);
  }, 60_000);
});
