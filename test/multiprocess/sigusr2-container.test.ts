/**
 * Issue 12: SIGUSR2 to the program (forwarded by `highwater run`) while its
 * pool's workers hold their memory writes a container-wide report of the
 * peak so far, with every worker's bytes at its line; the run's final
 * report follows at the end.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { cliPath, expectNear, fixtures, freshDir, lineOf, reportDirs, repoRoot } from '../helpers/cli.js';

const script = join(fixtures, 'python', 'pool_hold.py');
const POOL = lineOf(script, 'POOL-LINE');

it('SIGUSR2 while the workers hold: a container-wide report of the peak so far', async () => {
  const outDir = freshDir('hw-mp-usr2-');
  const barrier = freshDir('hw-mp-barrier-');
  const child = spawn(process.execPath, [cliPath, 'run', '-o', outDir, '--no-browser', script, 'spawn'], {
    cwd: repoRoot,
    env: { ...process.env, DISPLAY: '', STEP_MIB: '20', HOLD_SECONDS: '6', BARRIER_DIR: barrier },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((res) => child.on('close', res));
  // All three hold their blocks: then the signal (a second for the watcher to see them).
  while (readdirSync(barrier).length < 3) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1000));
  child.kill('SIGUSR2');
  expect(await closed, stderr).toBe(0);
  const held = [...stdout.matchAll(/^held (\d+) (\d+)$/gm)].map((m) => ({ pid: Number(m[1]), bytes: Number(m[2]) }));
  const reports = reportDirs(outDir).map((d) => JSON.parse(readFileSync(join(d, 'report.json'), 'utf8')) as ReportJson);
  expect(
    reports.map((r) => r.trigger),
    stderr,
  ).toEqual(['signal', 'exit']);
  const usr2 = reports[0]!;
  expect(usr2.container).toBeDefined();
  for (const h of held) {
    let n = 0;
    for (const s of usr2.stacks) if (s.frames[0]?.pid === h.pid && s.frames.at(-1)?.line === POOL) n += s.bytes;
    expectNear(n, h.bytes);
  }
}, 90_000);
