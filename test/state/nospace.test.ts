// A full run dir must never harm the program. The state and container files
// are sparse files mapped MAP_SHARED: a store into a page the filesystem has
// no block for is SIGBUS in the program. These runs put the run dir on a
// real tmpfs of a few hundred KiB (mounted here; we are root) and check that
// the program's exit code and stdout are exactly those of the plain run, and
// what the report still knows. Before the shim reserved its blocks
// (fallocate, native/shim/state.c), every case here died by signal 7.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bytesAtLine, fixtures, lineOf, MiB, onlyReport, runProfiled } from '../helpers/cli.js';
import { shimmedEnv } from '../shim/shimmed.js';

const script = join(fixtures, 'python', 'many_stacks.py');
const bigLine = lineOf(script, '# BIG');
const STACKS = '20000'; // ~20 000 nodes and funcs, ~1 MiB of names: outgrows every dir below

const mounts: string[] = [];
/** A fresh tmpfs of `kib` KiB, unmounted after the file. */
function tinyDir(kib: number, fs: 'tmpfs' | 'ramfs' = 'tmpfs'): string {
  const dir = mkdtempSync(join(tmpdir(), 'hw-nospace-'));
  execFileSync('mount', ['-t', fs, '-o', fs === 'tmpfs' ? `size=${kib}k,mode=0700` : 'mode=0700', fs, dir]);
  mounts.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of mounts) {
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

function plain(args: string[]) {
  const r = spawnSync('python3', [script, ...args], { encoding: 'utf8', timeout: 60_000 });
  expect(r.status, r.stderr).toBe(7);
  return r;
}

/** The program ran on as it does alone: no signal (SIGBUS was the bug), its
 * own exit code (7), its own output. `code` from runProfiled, `status` from spawnSync. */
function expectUnchanged(
  r: { signal: NodeJS.Signals | null; code?: number | null; status?: number | null; stdout: string; stderr: string },
  want: { stdout: string },
) {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code ?? r.status, r.stderr).toBe(7);
  expect(r.stdout).toBe(want.stdout);
}

function shimmed(runDir: string, args: string[]) {
  return spawnSync('python3', [script, ...args], { env: shimmedEnv(runDir), encoding: 'utf8', timeout: 60_000 });
}

const highwaterLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('highwater:'));

describe('a full run dir', () => {
  it('512 KiB: the program runs on unchanged; the report keeps the big line and says the tables ran out', async () => {
    const want = plain([STACKS]);
    const runDir = tinyDir(512);
    const r = await runProfiled([script, STACKS], { flags: ['--run-dir', runDir] });
    expectUnchanged(r, want);
    // One line per table that stopped, not one per stack.
    expect(
      highwaterLines(r.stderr).filter((l) => l.includes('to grow the stack table')),
      r.stderr,
    ).toHaveLength(1);
    const report = onlyReport(r.outDir);
    // Interned while the tables were small: named, with its bytes (bytearray's +1).
    const big = bytesAtLine(report, 'many_stacks.py', bigLine);
    expect(big).toBeGreaterThanOrEqual(24 * MiB);
    expect(big).toBeLessThan(24 * MiB + 4096);
    expect(report.truncation?.outOfSpace, JSON.stringify(report.truncation)).toContain('stacks');
  }, 120_000);

  it('64 KiB (the first slices do not fit): untracked, one log line, same exit and output', () => {
    const want = plain(['3000']);
    const runDir = tinyDir(64);
    const r = shimmed(runDir, ['3000']);
    expectUnchanged(r, want);
    const lines = highwaterLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/no space for the state file in .*; not tracking/);
    expect(readdirSync(runDir).filter((f) => f.endsWith('.state'))).toEqual([]);
  }, 120_000);

  // Parent, container file and fork child each run out at some size here.
  for (const kib of [256, 384, 512, 768]) {
    it(`${kib} KiB with a fork child: parent and child run on unchanged`, () => {
      const want = plain([STACKS, '--fork']);
      const runDir = tinyDir(kib);
      const r = shimmed(runDir, [STACKS, '--fork']);
      expectUnchanged(r, want); // includes "child exit 5"
      if (kib === 512) expect(r.stderr).toMatch(/no space for the container file in .*; this process is tracked alone/);
    }, 120_000);
  }

  // The child's own first slices fit, the parent's tables it would adopt do
  // not: it must not run on with the parent's stack ids (they name nodes its
  // file has no blocks for; it died by SIGBUS when it did).
  it("a fork child with room for its file but not for the parent's stacks runs untracked", () => {
    const want = plain([STACKS, '--fill-then-fork', '300']);
    expect(want.stdout).toContain('child exit 5');
    const runDir = tinyDir(16 * 1024);
    const r = shimmed(runDir, [STACKS, '--fill-then-fork', '300']);
    expectUnchanged(r, want);
    expect(
      highwaterLines(r.stderr).filter((l) => l.includes('this fork child is not tracked')),
      r.stderr,
    ).toHaveLength(1);
    // Its state file was removed with it: the parent's is the only one.
    expect(readdirSync(runDir).filter((f) => f.endsWith('.state'))).toHaveLength(1);
  }, 120_000);

  // Space freed before the end: the exit dump fits and carries the shim's
  // outOfSpace line; the report made from it says so as the state file would.
  it('the exit dump written after space came back says which tables ran out', async () => {
    const want = plain([STACKS, '--fill-first', '200']);
    const runDir = tinyDir(16 * 1024);
    const r = await runProfiled([script, STACKS, '--fill-first', '200'], { flags: ['--run-dir', runDir] });
    expectUnchanged(r, want);
    expect(r.stderr).not.toContain('could not write the exit dump');
    const report = onlyReport(r.outDir);
    expect(report.trigger).toBe('exit');
    expect(report.truncation?.outOfSpace, JSON.stringify(report.truncation)).toContain('stacks');
    const big = bytesAtLine(report, 'many_stacks.py', bigLine);
    expect(big).toBeGreaterThanOrEqual(24 * MiB);
    expect(big).toBeLessThan(24 * MiB + 4096);
  }, 120_000);

  // ramfs has no fallocate: the shim claims its blocks by writing zeros
  // there (state.c) and tracks as anywhere else.
  it('a filesystem without fallocate (ramfs): tracked, the big line with its bytes, same exit and output', async () => {
    const want = plain([STACKS]); // every table grows slice by slice
    const runDir = tinyDir(0, 'ramfs');
    const r = await runProfiled([script, STACKS], { flags: ['--run-dir', runDir] });
    expectUnchanged(r, want);
    expect(
      highwaterLines(r.stderr).filter((l) => /space|fallocate/.test(l)),
      r.stderr,
    ).toEqual([]);
    const report = onlyReport(r.outDir);
    const big = bytesAtLine(report, 'many_stacks.py', bigLine);
    expect(big).toBeGreaterThanOrEqual(24 * MiB);
    expect(big).toBeLessThan(24 * MiB + 4096);
    expect(report.truncation?.outOfSpace).toBeUndefined();
  }, 120_000);
});
