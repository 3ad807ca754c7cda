/**
 * A run dir (and an output dir) that someone else can write: planted
 * symlinks, FIFOs and devices, with the real `highwater watch` and
 * `highwater render`. The "victim" stands in for /etc/shadow: a file the
 * test owns, checked not to be copied, overwritten or chmod'ed.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildStateFile } from '../report/state-writer.js';
import { bytesAtLine, fixtures, freshDir, readReport, runCli } from '../helpers/cli.js';
import { completeReports, startWatch } from './processes.js';

const SECRET = 'root:$6$not-a-real-hash:19000:0:99999:7:::\n';
const MiB = 1024 * 1024;

function plantVictim(dir: string): string {
  const victim = join(dir, 'victim-shadow');
  writeFileSync(victim, SECRET);
  chmodSync(victim, 0o640);
  return victim;
}

function expectUntouched(victim: string): void {
  expect(readFileSync(victim, 'utf8')).toBe(SECRET);
  expect(statSync(victim).mode & 0o777).toBe(0o640);
}

/** Every file under `dir` (recursively) that holds the victim's text. */
function copiesOfSecret(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name);
    if (lstatSync(p).isFile() && readFileSync(p, 'utf8').includes('not-a-real-hash')) found.push(p);
  }
  return found;
}

/** A valid state file of a process that is gone (pid never alive here), 6 MiB at line 3 of the fixture. */
function deadProcessState(pid: number): Buffer {
  return buildStateFile({
    pid,
    funcs: [{ file: join(fixtures, 'state', 'example.py'), name: '<module>' }],
    nodes: [{ parent: 0, func: 0, line: 3 }],
    snapshot: [0, 6 * MiB],
    live: [0, 6 * MiB],
    peakSource: 1,
    updatedMs: Date.now() - 60_000,
  });
}

const DEAD_PID = 2_999_999; // above the default pid_max: never a live process

describe('highwater watch on a hostile run dir', () => {
  it('a symlinked dump (ln -s victim hw-1-1.dump) is skipped with a warning, never copied into the reports', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const victim = plantVictim(freshDir('hw-etc-'));
    symlinkSync(victim, join(runDir, 'hw-1-1.dump'));
    const w = startWatch(runDir, out, ['--once']);
    const end = await w.exited;
    expect(end, w.stderr()).toEqual({ code: 0, signal: null });
    expect(w.stderr()).toContain(`skipped ${join(runDir, 'hw-1-1.dump')}: a symbolic link, not read`);
    expect(copiesOfSecret(out)).toEqual([]);
    expect(lstatSync(join(runDir, 'hw-1-1.dump')).isSymbolicLink()).toBe(true); // not removed either: not ours
    expectUntouched(victim);
  });

  it('hw-9-1.dump -> /dev/zero is refused: watch --once ends at once, exit 0, nothing read', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    symlinkSync('/dev/zero', join(runDir, 'hw-9-1.dump'));
    const t0 = Date.now();
    const w = startWatch(runDir, out, ['--once']);
    const end = await w.exited;
    expect(end, w.stderr()).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(w.stderr()).toContain('hw-9-1.dump: a symbolic link, not read');
    expect(readdirSync(out)).toEqual([]);
  });

  it('a FIFO dump hw-8-1.dump: watch --once ends, the FIFO is skipped with one warning', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    execFileSync('mkfifo', [join(runDir, 'hw-8-1.dump')]);
    const w = startWatch(runDir, out, ['--once']);
    const end = await w.exited;
    expect(end, w.stderr()).toEqual({ code: 0, signal: null });
    expect(w.stderr().split('hw-8-1.dump: a FIFO, not read')).toHaveLength(2); // once
  });

  it('a FIFO hw-7.state beside a valid state file: the valid one gets its report, SIGTERM still stops the watcher', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    execFileSync('mkfifo', [join(runDir, 'hw-7.state')]);
    writeFileSync(join(runDir, `hw-${DEAD_PID}.state`), deadProcessState(DEAD_PID));
    const w = startWatch(runDir, out, ['--warn-after', '0']);
    await w.waitFor('report written to', 20_000);
    const dirs = completeReports(out);
    expect(dirs).toHaveLength(1);
    const report = readReport(dirs[0]!);
    expect(report.trigger).toBe('killed');
    expect(bytesAtLine(report, 'example.py', 3)).toBe(6 * MiB);
    expect(w.stderr().split('hw-7.state: a FIFO, not read')).toHaveLength(2); // one warning, not one per poll
    w.child.kill('SIGTERM');
    const t0 = Date.now();
    expect(await w.exited, w.stderr()).toEqual({ code: 0, signal: null });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it.skipIf(process.getuid?.() !== 0 || !existsSync('/usr/bin/setpriv'))(
    'a state file the watcher cannot read (EACCES): one warning, the watcher goes on',
    async () => {
      const runDir = freshDir('hw-run-');
      const out = freshDir('hw-out-');
      chmodSync(runDir, 0o777);
      chmodSync(out, 0o777);
      const state = join(runDir, `hw-${DEAD_PID}.state`);
      writeFileSync(state, deadProcessState(DEAD_PID));
      chmodSync(state, 0o600); // root's; the watcher runs as nobody
      const w = startWatch(runDir, out, ['--warn-after', '0'], {}, ['/usr/bin/setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups']);
      await w.waitFor(`skipped ${state}: cannot read the state file: EACCES`);
      await new Promise((r) => setTimeout(r, 1500)); // several polls
      w.child.kill('SIGTERM');
      expect(await w.exited, w.stderr()).toEqual({ code: 0, signal: null });
      expect(w.stderr().split('cannot read the state file: EACCES')).toHaveLength(2); // once, not once per poll
      expect(readdirSync(out)).toEqual([]);
    },
  );

  it('a symlink planted in the output dir at the kept-raw-data name is not written through', async () => {
    const runDir = freshDir('hw-run-');
    const out = freshDir('hw-out-');
    const victim = plantVictim(freshDir('hw-etc-'));
    copyFileSync(join(fixtures, 'dumps', 'truncated.dump'), join(runDir, 'hw-5-1.dump'));
    symlinkSync(victim, join(out, 'hw-5-1.dump'));
    const w = startWatch(runDir, out, ['--once']);
    const end = await w.exited;
    expect(end.code, w.stderr()).toBe(1); // --once: a report could not be written
    expectUntouched(victim);
    expect(lstatSync(join(out, 'hw-5-1.dump')).isSymbolicLink()).toBe(true);
    // The copy went beside the planted name, byte for byte.
    expect(w.stderr()).toContain(`raw data kept at ${join(out, 'hw-5-1.dump.1')}`);
    expect(readFileSync(join(out, 'hw-5-1.dump.1'))).toEqual(readFileSync(join(fixtures, 'dumps', 'truncated.dump')));
  });
});

describe('highwater render into an existing directory (--no-timestamp)', () => {
  it('a planted report.json -> victim is replaced, the victim is neither overwritten nor chmod-ed', async () => {
    const out = freshDir('hw-out-');
    const victim = plantVictim(freshDir('hw-etc-'));
    symlinkSync(victim, join(out, 'report.json'));
    const r = await runCli(['render', join(fixtures, 'dumps', 'example.dump'), '-o', out, '--no-timestamp']);
    expect(r.code, r.stderr).toBe(0);
    expectUntouched(victim);
    const st = lstatSync(join(out, 'report.json'));
    expect(st.isFile()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(readReport(out).peakBytes).toBe(587207560);
    expect(readdirSync(out).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('a directory planted at report.json: HW_ERR_OUTPUT_UNWRITABLE naming the path, exit 2', async () => {
    const out = freshDir('hw-out-');
    mkdirSync(join(out, 'report.json'));
    const r = await runCli(['render', join(fixtures, 'dumps', 'example.dump'), '-o', out, '--no-timestamp']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write the report at ${join(out, 'report.json')}`);
    expect(r.stderr).not.toContain('internal error');
    expect(existsSync(join(out, 'report.json', 'x'))).toBe(false);
  });
});
