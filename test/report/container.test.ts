/**
 * The container-wide report (report/container.ts): several processes' data
 * rendered as one report whose flamegraph root splits by process, whose top
 * lines, terminal summary and OOM line name the process. Data built by hand
 * here; test/multiprocess/ checks the same against real pools.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { containerProfileData, type ContainerInput, type ProcessPart } from '../../sidecar/src/report/container.js';
import type { Frame, Stack } from '../../sidecar/src/report/model.js';
import { oomHeadline } from '../../sidecar/src/report/oom-headline.js';
import { renderReport } from '../../sidecar/src/report/render.js';
import { reportSummaryLines } from '../../sidecar/src/report/toplines.js';

const MiB = 1024 * 1024;
const f = (file: string, line: number, fn: string, code: string): Frame => ({ file, line, function: fn, code });
const MAIN = f('/app/train.py', 20, '<module>', 'main()');
const LOAD = f('/app/train.py', 8, 'main', 'table = load()');
const BUILD = f('/app/features.py', 88, 'build_matrix', 'rows = np.vstack(parts)');
const SMALL = f('/app/features.py', 91, 'build_matrix', 'idx = list(range(n))');
const NP = f('/usr/lib/python3/dist-packages/numpy/core/shape_base.py', 289, 'vstack', 'return _nx.concatenate(arrs, 0)');

const SPAWN_ARGV = [
  '/usr/bin/python3',
  '-c',
  'from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)',
  '--multiprocessing-fork',
];

function part(pid: number, label: string, argv: string[], peak: Stack[], live: Stack[] | null, over: Partial<ProcessPart> = {}): ProcessPart {
  return {
    pid,
    label,
    argv,
    python: '3.11.7',
    cwd: '/app',
    peakStacks: peak,
    ownPeakBytes: peak.reduce((a, s) => a + s.bytes, 0),
    liveStacks: live,
    state: 'running',
    report: null,
    ...over,
  };
}

function input(over: Partial<ContainerInput> = {}): ContainerInput {
  return {
    trigger: 'oom',
    oomReason: 'low-available',
    oomPid: 41,
    oomAllocation: null,
    timeMs: 1764035000000,
    memory: { source: 'cgroup-v1', limitBytes: 1024 * MiB, workingSetBytes: 990 * MiB, availableBytes: 34 * MiB, swapBytes: 0, floorBytes: 100 * MiB },
    topPid: 12,
    peakMs: 1764034999000,
    peakSource: 'sampled',
    processes: [
      part(12, 'python train.py', ['python3', '/app/train.py'], [{ bytes: 40 * MiB, frames: [MAIN, LOAD] }], [{ bytes: 40 * MiB, frames: [MAIN, LOAD] }]),
      part(
        41,
        'worker 1 (multiprocessing spawn)',
        SPAWN_ARGV,
        [
          { bytes: 800 * MiB, frames: [BUILD, NP] },
          { bytes: 2 * MiB, frames: [SMALL] },
        ],
        [
          { bytes: 900 * MiB, frames: [BUILD, NP] },
          { bytes: 2 * MiB, frames: [SMALL] },
          { bytes: 1 * MiB, frames: [] },
        ],
        { state: 'oom', ownPeakBytes: 903 * MiB },
      ),
      part(42, 'worker 2 (multiprocessing spawn)', SPAWN_ARGV, [{ bytes: 30 * MiB, frames: [BUILD, NP] }], [{ bytes: 12 * MiB, frames: [BUILD, NP] }]),
    ],
    folded: { count: 0, peakBytes: 0 },
    ...over,
  };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'hw-container-'));

describe('container-wide report', () => {
  test('root splits by process; bytes at the named lines per process; report.json carries every process', async () => {
    const { dir, report } = await renderReport(containerProfileData(input()), tmp(), { timestampedSubdir: false });
    const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(json).toEqual(report);
    expect(json.peakBytes).toBe(872 * MiB); // 40 + 802 + 30: the sum at the container's peak
    expect(json.process).toEqual({ pid: 12, argv: ['python3', '/app/train.py'], python: '3.11.7' });
    expect(json.stacks[0].bytes).toBe(800 * MiB);
    expect(json.stacks[0].frames[0]).toEqual({ file: '', line: 0, function: 'pid 41: worker 1 (multiprocessing spawn)', code: '', pid: 41 });
    expect(json.stacks[0].frames.slice(1)).toEqual([BUILD, NP]);
    expect(json.container).toEqual({ processCount: 3, peakMs: 1764034999000, peakSource: 'sampled', oomPid: 41, foldedProcesses: 0, foldedPeakBytes: 0 });
    expect(json.processes.map((p: { pid: number; bytesAtPeak: number; liveBytes: number }) => [p.pid, p.bytesAtPeak, p.liveBytes])).toEqual([
      [12, 40 * MiB, 40 * MiB],
      [41, 802 * MiB, 903 * MiB],
      [42, 30 * MiB, 12 * MiB],
    ]);
    // What was live when it ran out, per process; memory with no Python frame stays under its process.
    expect(json.oomStacks[0]).toMatchObject({ bytes: 900 * MiB, frames: [{ pid: 41 }, BUILD, NP] });
    const current = containerProfileData(input()).currentStacks!;
    expect(current.some((s) => s.frames[0]!.pid === 41 && s.frames[1]!.function === '[no Python frame]' && s.bytes === MiB)).toBe(true);

    const folded = readFileSync(join(dir, 'peak-memory.folded'), 'utf8').split('\n');
    expect(folded[0]).toBe('pid 41: worker 1 (multiprocessing spawn);features.py:88 (build_matrix);shape_base.py:289 (vstack) 838860800');
    expect(folded).toContain('pid 12: python train.py;train.py:20 (<module>);train.py:8 (main) 41943040');
    // The same line in another process is another stack.
    expect(folded).toContain('pid 42: worker 2 (multiprocessing spawn);features.py:88 (build_matrix);shape_base.py:289 (vstack) 31457280');

    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('id="process-table"');
    expect(html).toMatch(/<tr data-pid="41"><td class="n">41<\/td><td>worker 1 \(multiprocessing spawn\)<\/td>/);
    // The live table's first row: the worker's line, with its process.
    const liveTable = html.slice(html.indexOf('id="top-lines-live"'), html.indexOf('</table>', html.indexOf('id="top-lines-live"')));
    expect(liveTable).toMatch(/<th>process<\/th>/);
    expect(liveTable).toMatch(
      /<td class="n">1<\/td><td class="proc">pid 41 \(worker 1\)<\/td><td><span class="loc" title="\/app\/features.py:88">features.py:88<\/span>/,
    );
    expect(html).toContain('3 Python processes; when it ran out, pid 41 (worker 1 (multiprocessing spawn)) held the most: 903.0 MiB.');
    expect(html).toContain('<title>highwater: peak memory 872.0 MiB \u2014 python3 /app/train.py and 2 other processes</title>');
  });

  test('terminal: the top lines and the OOM line name the process holding the most', async () => {
    const { report } = await renderReport(containerProfileData(input()), tmp(), { timestampedSubdir: false });
    const lines = reportSummaryLines(report);
    expect(lines[0]).toBe('top lines live when it ran out:');
    expect(lines[1]).toBe('  900.0 MiB  pid 41 (worker 1)         features.py:88  build_matrix  rows = np.vstack(parts)');
    expect(lines[2]).toBe('   40.0 MiB  pid 12 (python train.py)  train.py:8      main          table = load()');
    expect(lines[3]).toBe('   12.0 MiB  pid 42 (worker 2)         features.py:88  build_matrix  rows = np.vstack(parts)');
    expect(oomHeadline(report)).toEqual([
      'out of memory (low-available): 990.0 MiB of 1.0 GiB in use by 3 Python processes',
      '  pid 41 (worker 1)  903.0 MiB  at  features.py:88 build_matrix  rows = np.vstack(parts)',
    ]);
  });

  test('a container-wide post-mortem (killed): every process at its death is the live view', async () => {
    const { dir, report } = await renderReport(containerProfileData(input({ trigger: 'killed', oomReason: null, oomPid: null })), tmp(), {
      timestampedSubdir: false,
    });
    expect(report.oomStacks![0]).toMatchObject({ bytes: 900 * MiB, frames: [{ pid: 41 }, BUILD, NP] });
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).toContain('id="top-lines-live"');
    expect(oomHeadline(report)).toEqual([
      'killed (SIGKILL, most likely the kernel OOM killer): 955.0 MiB of 1.0 GiB tracked by 3 Python processes',
      '  pid 41 (worker 1)  903.0 MiB  at  features.py:88 build_matrix  rows = np.vstack(parts)',
    ]);
  });

  test('a single-process report has no process frames, tables or OOM line', async () => {
    const one = containerProfileData(input());
    const { processes: _p, container: _c, ...single } = one;
    const plain = { ...single, stacks: [{ bytes: 5 * MiB, frames: [MAIN, LOAD] }], currentStacks: null };
    const { dir, report } = await renderReport(plain, tmp(), { timestampedSubdir: false });
    expect(report.processes).toBeUndefined();
    expect(report.container).toBeUndefined();
    expect(oomHeadline(report)).toEqual([]);
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).not.toContain('process-table');
    expect(reportSummaryLines(report)[1]).toBe('  5.0 MiB  train.py:8  main  table = load()');
  });

  test('a process whose run dir filled up: the container report says which tables stopped, as its own report does', async () => {
    const base = input();
    const full = input({ processes: base.processes.map((p): ProcessPart => (p.pid === 42 ? { ...p, outOfSpace: ['stacks', 'names'] } : p)) });
    const { dir, report } = await renderReport(containerProfileData(full), tmp(), { timestampedSubdir: false });
    expect(report.truncation?.outOfSpace).toEqual(['names', 'stacks']);
    expect(readFileSync(join(dir, 'index.html'), 'utf8')).toContain(
      'the run dir ran out of space, so the shim&#39;s name area and stack table stopped growing',
    );
    const { report: clean } = await renderReport(containerProfileData(base), tmp(), { timestampedSubdir: false });
    expect(clean.truncation).toBeNull();
  });
});
