/**
 * Issue 12: `highwater run` on a Pool(3) (spawn, fork, forkserver) writes ONE
 * container-wide report: the root splits by process, each worker's bytes at
 * its line match what it really held (the program prints it), the container
 * peak is the sum when all three held their blocks, and each process's own
 * report is under processes/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { expectNear, fixtures, freshDir, lineOf, MiB, reportDirs, runProfiled } from '../helpers/cli.js';

const script = join(fixtures, 'python', 'pool_hold.py');
const POOL = lineOf(script, 'POOL-LINE');
const MAIN = lineOf(script, 'MAIN-LINE');

function atLine(stacks: ReportJson['stacks'], pid: number, line: number): number {
  let n = 0;
  for (const s of stacks) {
    if (s.frames[0]?.pid !== pid) continue;
    const own = [...s.frames].reverse().find((f) => f.file.endsWith('pool_hold.py'));
    if (own?.line === line) n += s.bytes;
  }
  return n;
}

describe('a Pool(3) under highwater run: one container-wide report', () => {
  it.each(['spawn', 'fork', 'forkserver'])(
    '%s',
    async (method) => {
      const r = await runProfiled([script, method], { env: { STEP_MIB: '20', MAIN_MIB: '8', HOLD_SECONDS: '1', BARRIER_DIR: freshDir('hw-mp-barrier-') } });
      expect(r.code, r.stderr).toBe(0);
      const held = [...r.stdout.matchAll(/^held (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), bytes: Number(m[2]) }));
      expect(held).toHaveLength(3);
      const dirs = reportDirs(r.outDir);
      expect(dirs, r.stderr).toHaveLength(1);
      const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
      expect(rep.container!.peakSource).toBe('container');
      const how = method === 'spawn' ? 'multiprocessing spawn' : method === 'fork' ? 'fork' : 'multiprocessing forkserver';
      for (const h of held) {
        const p = rep.processes!.find((x) => x.pid === h.pid)!;
        expect(p.label).toMatch(new RegExp(`^worker \\d+ \\(${how}\\)$`));
        // At the container peak all three held their blocks (3 s each, at once): bytes at the line, ±5 %.
        expectNear(atLine(rep.stacks, h.pid, POOL), h.bytes);
        expect(existsSync(join(dirs[0]!, p.report!))).toBe(true);
        // Its own report: its own peak, the same block.
        const own = JSON.parse(readFileSync(join(dirs[0]!, p.report!.replace(/index\.html$/, 'report.json')), 'utf8')) as ReportJson;
        expect(own.process.pid).toBe(h.pid);
      }
      expectNear(atLine(rep.stacks, rep.process.pid, MAIN), 8 * MiB);
      // The peak is the sum of the parts, and holds the three blocks and the parent's.
      expect(rep.peakBytes).toBeGreaterThanOrEqual(held.reduce((a, h) => a + h.bytes, 0) + 8 * MiB);
      // The terminal names the processes.
      expect(r.stderr).toMatch(new RegExp(`highwater: +60\\.0 MiB +pid \\d+ \\(worker \\d+\\) +pool_hold\\.py:${POOL} +task`));
    },
    90_000,
  );
});
