/**
 * Issue 12: a pool that recycles its workers for 60 s keeps the run dir
 * bounded: the files of ended processes are folded into the container-wide
 * data and removed. Real `highwater run --run-dir`, the run dir listed
 * every 250 ms while it runs.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { KEEP_ENDED } from '../../sidecar/src/watcher/container.js';
import { cliPath, fixtures, freshDir, reportDirs, repoRoot } from '../helpers/cli.js';

const script = join(fixtures, 'python', 'recycle_pool.py');
const SECONDS = Number(process.env.HW_RECYCLE_SECONDS ?? '60');

it(
  `a recycling pool (maxtasksperchild=1) running ${SECONDS} s keeps the run dir bounded`,
  async () => {
    const runDir = join(freshDir('hw-mp-recycle-'), 'run');
    const outDir = freshDir('hw-mp-recycle-out-');
    const child = spawn(process.execPath, [cliPath, 'run', '--run-dir', runDir, '-o', outDir, '--no-browser', script, 'fork'], {
      cwd: repoRoot,
      env: { ...process.env, DISPLAY: '', DURATION: String(SECONDS) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let maxEntries = 0;
    let maxBlocks = 0;
    const counts: number[] = [];
    const probe = setInterval(() => {
      try {
        const names = readdirSync(runDir);
        counts.push(names.length);
        maxEntries = Math.max(maxEntries, names.length);
        let blocks = 0;
        for (const n of names) {
          try {
            blocks += statSync(join(runDir, n)).blocks;
          } catch {
            // removed between the listing and the stat
          }
        }
        maxBlocks = Math.max(maxBlocks, blocks);
      } catch {
        // not created yet, or removed at the end
      }
    }, 250);
    const code = await new Promise<number | null>((res) => child.on('close', res));
    clearInterval(probe);
    expect(code, stderr).toBe(0);
    const tasks = Number(/tasks (\d+)/.exec(stdout)?.[1]);
    expect(tasks).toBeGreaterThan(40);

    // Running at once: the program, the resource tracker... at most 2 workers (a few more while the pool replaces them).
    // Each has a state file and a socket; plus hw-container and highwater.lock, and dumps waiting to be read:
    // 16 entries on a quiet machine, 36 seen on a loaded one, where the watcher folds ended processes later.
    // Kept, every task would leave two (2 x tasks > 80). Bounded also means flat: the last third of the run
    // holds no more than the first two thirds did.
    const cut = Math.floor((counts.length * 2) / 3);
    const early = Math.max(...counts.slice(0, cut));
    const late = Math.max(...counts.slice(cut));
    console.log(
      `recycling pool, ${SECONDS} s: ${tasks} tasks; run dir at most ${maxEntries} entries (first two thirds ${early}, last third ${late}), ${((maxBlocks * 512) / 1048576).toFixed(1)} MiB allocated`,
    );
    expect(maxEntries).toBeLessThanOrEqual(48);
    expect(late).toBeLessThanOrEqual(early + 8);

    const dirs = reportDirs(outDir);
    expect(dirs, stderr).toHaveLength(1);
    const rep = JSON.parse(readFileSync(join(dirs[0]!, 'report.json'), 'utf8')) as ReportJson;
    // Every worker is counted; only the kept ones are listed.
    expect(rep.container!.processCount).toBeGreaterThanOrEqual(tasks + 1);
    expect(rep.container!.foldedProcesses).toBeGreaterThan(0);
    expect(rep.processes!.length).toBeLessThanOrEqual(KEEP_ENDED + 6);
    expect(rep.processes!.length + rep.container!.foldedProcesses).toBe(rep.container!.processCount);
    expect(readdirSync(join(dirs[0]!, 'processes')).length).toBeLessThanOrEqual(KEEP_ENDED + 6);
  },
  SECONDS * 1000 + 120_000,
);
