/**
 * `highwater render DUMP --children DIR` (report/api-children.ts): the dumps
 * highwater.api.profile()'s children left join the call's report, one part
 * per process at its own peak. The directory is the program's: only regular
 * files named child-<pid>.dump are read; a link or a broken dump is left out.
 */
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { childDumps, renderWithChildren } from '../../sidecar/src/report/api-children.js';
import type { ReportJson } from '../../sidecar/src/report/model.js';

const FX = join(import.meta.dirname, '../fixtures/dumps');

/** example.dump as process `pid` (its header names the pid). */
function dumpAs(dir: string, name: string, pid: number): string {
  const path = join(dir, name);
  writeFileSync(path, readFileSync(join(FX, 'example.dump'), 'utf8').replace('"pid":12,', `"pid":${pid},`));
  return path;
}

describe('render --children', () => {
  it("joins each child's dump as its own part; a symlink, a broken dump and other names are left out", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-api-children-'));
    const top = dumpAs(mkdtempSync(join(tmpdir(), 'hw-api-top-')), 'top.dump', 100);
    dumpAs(dir, 'child-101.dump', 101);
    dumpAs(dir, 'child-102.dump.part', 102); // still being written
    const planted = dumpAs(mkdtempSync(join(tmpdir(), 'hw-elsewhere-')), 'x.dump', 103);
    symlinkSync(planted, join(dir, 'child-103.dump'));
    copyFileSync(join(FX, 'truncated-midline.dump'), join(dir, 'child-104.dump'));
    expect(childDumps(dir).map((c) => c.pid)).toEqual([101, 104]);

    const out = mkdtempSync(join(tmpdir(), 'hw-api-out-'));
    const { dir: written } = await renderWithChildren(top, dir, out, { timestampedSubdir: false });
    expect(written).toBe(out);
    const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.trigger).toBe('api');
    expect(rep.process.pid).toBe(100);
    expect(rep.processes!.map((p) => p.pid).sort()).toEqual([100, 101]);
    expect(rep.container!.peakSource).toBe('own-peaks');
    // Each part is its process's own peak: twice the one dump's.
    const one = rep.processes!.find((p) => p.pid === 101)!;
    expect(one.bytesAtPeak).toBe(one.ownPeakBytes);
    expect(rep.peakBytes).toBe(2 * one.bytesAtPeak);
    expect(readdirSync(join(out, 'processes')).sort()).toEqual(['pid-100', 'pid-101']);
  });

  it('no child dump: the single-process report, as before', async () => {
    const top = dumpAs(mkdtempSync(join(tmpdir(), 'hw-api-top-')), 'top.dump', 100);
    const out = mkdtempSync(join(tmpdir(), 'hw-api-out-'));
    await renderWithChildren(top, mkdtempSync(join(tmpdir(), 'hw-api-children-')), out, { timestampedSubdir: false });
    const rep = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportJson;
    expect(rep.processes).toBeUndefined();
    expect(readdirSync(out)).not.toContain('processes');
  });
});
