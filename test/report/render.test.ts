import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { parseDump } from '../../sidecar/src/report/dump.js';
import { renderDumpFile, renderReport, timestampName } from '../../sidecar/src/report/render.js';

const DUMPS = join(import.meta.dirname, '../fixtures/dumps');
const tmp = () => mkdtempSync(join(tmpdir(), 'hw-render-'));
const NOW = new Date('2026-11-25T02:10:33.123Z');

describe('renderReport', () => {
  test('seed example: all five files, report.json contract, owner-only modes', async () => {
    const out = tmp();
    const { dir, report } = await renderDumpFile(join(DUMPS, 'example.dump'), out, { now: NOW });
    expect(dir).toBe(join(out, '2026-11-25T02-10-33-123Z'));
    expect(readdirSync(dir).sort()).toEqual(['index.html', 'peak-memory-reversed.svg', 'peak-memory.folded', 'peak-memory.svg', 'report.json']);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const name of readdirSync(dir)) expect(statSync(join(dir, name)).mode & 0o777).toBe(0o600);

    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(json).toEqual(report);
    expect(Object.keys(json)).toEqual([
      'version',
      'trigger',
      'oomReason',
      'oomAllocation',
      'peakBytes',
      'timeMs',
      'process',
      'memory',
      'sampling',
      'truncation',
      'stacks',
    ]);
    expect(json.sampling).toBeNull(); // exact: every allocation has its stack
    expect(json.truncation).toBeNull(); // within the limits: nothing cut
    expect(json.version).toBe(1);
    expect(json.trigger).toBe('exit');
    expect(json.oomReason).toBeNull();
    expect(json.oomAllocation).toBeNull();
    expect(json.peakBytes).toBe(587207560);
    expect(json.process).toEqual({ pid: 12, argv: ['python', 'example.py'], python: '3.11.7' });
    expect(json.memory.source).toBe('cgroup-v2');
    expect(json.memory.limitBytes).toBe(1073741824);
    // Largest first; the 4000- and 1000-byte stacks are cut: 3 stacks already cover 99.999 %.
    expect(json.stacks.map((s: { bytes: number }) => s.bytes)).toEqual([419430400, 83886080, 83886080]);
    const covered = json.stacks.reduce((a: number, s: { bytes: number }) => a + s.bytes, 0);
    expect(covered / json.peakBytes).toBeGreaterThanOrEqual(0.99);
    expect(json.stacks[0].frames).toEqual([
      { file: '/work/example.py', line: 15, function: '<module>', code: 'main()' },
      { file: '/work/example.py', line: 13, function: 'main', code: 'another_arr = make_big_array()', indent: 4 },
      { file: '/work/example.py', line: 4, function: 'make_big_array', code: 'return np.zeros((1024, 1024, 50))', indent: 4 },
    ]);
    expect(json.stacks[1].frames[2].line).toBe(7);
    expect(json.stacks[2].frames[2].line).toBe(8);

    expect(readFileSync(join(dir, 'peak-memory.folded'), 'utf8')).toBe(
      [
        'example.py:15 (<module>);example.py:13 (main);example.py:4 (make_big_array) 419430400',
        'example.py:15 (<module>);example.py:12 (main);example.py:7 (make_two_arrays) 83886080',
        'example.py:15 (<module>);example.py:12 (main);example.py:8 (make_two_arrays) 83886080',
        'example.py:1 (<module>) 4000',
        '[no Python frame] 1000',
        '',
      ].join('\n'),
    );

    const svg = readFileSync(join(dir, 'peak-memory.svg'), 'utf8');
    // The source line under a frame keeps its indentation (issue 11).
    expect(svg).toContain('>    return np.zeros((1024, 1024, 50))</text>');
    expect(svg).toContain('>    arr1, arr2 = make_two_arrays()</text>');
    const rev = readFileSync(join(dir, 'peak-memory-reversed.svg'), 'utf8');
    expect(rev).toMatch(/data-w="419430400" data-d="1"[^]*?>make_big_array \(example\.py:4\)</);

    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('Peak memory: 560.0 MiB (587,207,560 bytes)');
    expect(html).toContain('Normal exit');
    // One self-contained file: both flamegraphs inline (iframe srcdoc), links to the files too.
    expect(html).toContain('<iframe class="fg" id="fg-peak" title="flamegraph"');
    expect(html).toContain('<iframe class="fg near" id="fg-peak-rev" title="flamegraph"'); // filled when scrolled near
    expect(html.match(/<g class=&quot;f&quot;/g)!.length).toBe(7); // the peak flamegraph inline, frame for frame
    expect(html).toContain('href="peak-memory.svg"');
    expect(html).toContain('href="peak-memory.folded"');
    expect(html).toContain('href="report.json"');
    expect(html).toContain('<td class="n">71.43%</td>');
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect(html).not.toMatch(/<script[^>]* src=/);
  });

  test('oom report: reason in words, oomAllocation, escaping in HTML', async () => {
    const { dir, report } = await renderDumpFile(join(DUMPS, 'oom.dump'), tmp(), { now: NOW });
    expect(report.trigger).toBe('oom');
    expect(report.oomReason).toBe('low-available');
    expect(report.oomAllocation!.bytes).toBe(8796093022208);
    expect(report.memory).toMatchObject({ availableBytes: 125919104, floorBytes: 104857600 });
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('Out of memory: available memory fell under the floor (floor 100.0 MiB)');
    expect(html).toMatch(/<p id="oom-allocation">8\.0 TiB requested at <span class="loc" title="\/app\/job\.py:4">job\.py:4<\/span>/);
    expect(html).toContain('load &lt;rows&gt; &amp; &quot;quote&quot;');
    // Only our own script elements: hostile text never opens or closes one.
    expect(html.match(/<script/g)?.length).toBe(html.match(/<\/script>/g)?.length);
  });

  test('same timestamp twice gets a -1 suffix; no ":" or "." in the name', async () => {
    const out = tmp();
    const data = parseDump(readFileSync(join(DUMPS, 'example.dump'), 'utf8'));
    const a = await renderReport(data, out, { now: NOW });
    const b = await renderReport(data, out, { now: NOW });
    const c = await renderReport(data, out, { now: NOW });
    expect([a.dir, b.dir, c.dir].map((d) => d.slice(out.length + 1))).toEqual([
      '2026-11-25T02-10-33-123Z',
      '2026-11-25T02-10-33-123Z-1',
      '2026-11-25T02-10-33-123Z-2',
    ]);
    expect(timestampName(new Date())).not.toMatch(/[:.]/);
  });

  test('timestampedSubdir false writes into outDir (creating it); fileMode is honoured', async () => {
    const out = join(tmp(), 'a', 'b');
    const data = parseDump(readFileSync(join(DUMPS, 'example.dump'), 'utf8'));
    const { dir } = await renderReport(data, out, { timestampedSubdir: false, fileMode: 0o644 });
    expect(dir).toBe(out);
    expect(statSync(join(out, 'report.json')).mode & 0o777).toBe(0o644);
    // Re-render over existing files resets their mode too.
    await renderReport(data, out, { timestampedSubdir: false });
    expect(statSync(join(out, 'index.html')).mode & 0o777).toBe(0o600);
  });

  test('unwritable output: HW_ERR_OUTPUT_UNWRITABLE naming the path and errno', async () => {
    const base = tmp();
    writeFileSync(join(base, 'file'), 'x');
    const data = parseDump(readFileSync(join(DUMPS, 'example.dump'), 'utf8'));
    const bad = join(base, 'file', 'reports');
    await expect(renderReport(data, bad)).rejects.toSatisfy(
      (e) => isHighwaterError(e, 'HW_ERR_OUTPUT_UNWRITABLE') && e.message.includes(bad) && /ENOTDIR|EEXIST/.test(e.message),
    );
    // A directory where a file must go: the error names that file.
    const out = join(base, 'out');
    mkdirSync(join(out, 'report.json'), { recursive: true });
    await expect(renderReport(data, out, { timestampedSubdir: false })).rejects.toSatisfy(
      (e) => isHighwaterError(e, 'HW_ERR_OUTPUT_UNWRITABLE') && e.message.includes(join(out, 'report.json')) && e.message.includes('EISDIR'),
    );
  });
});
