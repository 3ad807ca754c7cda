/**
 * `highwater run` and its run dir (issue 8 items 7, 8, 9): the run dir
 * belongs to one run, what a program drops into it never turns its exit
 * status into ours, and what cannot be rendered is kept next to the reports.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deepStateFile } from '../report/hostile-inputs.js';
import { fixtures, freshDir, onlyReport, reportDirs, runProfiled } from '../helpers/cli.js';

const MiB = 1024 * 1024;
const DEAD_PID = 2_999_997; // above the default pid_max: never a live process

function script(body: string): string {
  const path = join(freshDir('hw-script-'), 'prog.py');
  writeFileSync(path, body);
  return path;
}

describe('highwater run: files dropped into the run dir', () => {
  it('a program that drops a 2 000-frame state file and a truncated dump, then exits 7: exit 7, raw data kept beside the reports, run dir removed', async () => {
    const rd = freshDir('hw-drop-');
    writeFileSync(join(rd, 'chain.state'), deepStateFile(2000, 8 * MiB, DEAD_PID));
    const prog = script(
      [
        'import os, shutil, sys',
        'rd = os.environ["HIGHWATER_RUN_DIR"]',
        'print("RUNDIR", rd, flush=True)',
        `shutil.copy(${JSON.stringify(join(rd, 'chain.state'))}, os.path.join(rd, "hw-${DEAD_PID}.state"))`,
        `shutil.copy(${JSON.stringify(join(fixtures, 'dumps', 'truncated.dump'))}, os.path.join(rd, "hw-${DEAD_PID + 1}-1.dump"))`,
        'sys.exit(7)',
      ].join('\n'),
    );
    const r = await runProfiled([prog]);
    expect(r.code, r.stderr).toBe(7);
    const runDir = /RUNDIR (\S+)/.exec(r.stdout)![1]!;
    expect(existsSync(runDir)).toBe(false);
    expect(r.stderr).toMatch(new RegExp(`could not render ${runDir}/hw-${DEAD_PID + 1}-1\\.dump: .*\\(HW_ERR_DUMP_TRUNCATED\\)`));
    const kept = join(r.outDir, `hw-${DEAD_PID + 1}-1.dump`);
    expect(r.stderr).toContain(`raw data kept at ${kept}`);
    expect(readFileSync(kept)).toEqual(readFileSync(join(fixtures, 'dumps', 'truncated.dump')));
    // The dropped state file got its (folded) post-mortem, beside the program's own report.
    const chain = reportDirs(r.outDir)
      .map((d) => JSON.parse(readFileSync(join(d, 'report.json'), 'utf8')))
      .find((j) => j.process.pid === DEAD_PID);
    expect(chain.stacks[0].frames.at(-1).line).toBe(2000);
    expect(chain.truncation.foldedStacks).toBe(1);
  }, 120_000);

  it('the "raw data kept" copy of a sparse 168 MiB state file stays sparse', async () => {
    const prog = script(
      [
        'import os',
        'rd = os.environ["HIGHWATER_RUN_DIR"]',
        `with open(os.path.join(rd, "hw-${DEAD_PID}.state"), "wb") as f:`,
        // Version 9: a post-mortem is impossible, the raw file must be kept.
        '    f.write(b"HWSTATE1" + (9).to_bytes(4, "little") + (4096).to_bytes(4, "little"))',
        '    f.truncate(168 * 1024 * 1024)',
      ].join('\n'),
    );
    const r = await runProfiled([prog]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('(HW_ERR_STATE_INVALID)');
    const kept = join(r.outDir, `hw-${DEAD_PID}.state`);
    expect(r.stderr).toContain(`raw data kept at ${kept}`);
    const st = statSync(kept);
    expect(st.size).toBe(168 * MiB);
    expect(st.blocks * 512).toBeLessThan(1 * MiB);
    expect(readFileSync(kept).subarray(0, 8).toString()).toBe('HWSTATE1');
  }, 120_000);

  it('the run dir deleted mid-run: a true message, the exit status kept', async () => {
    const prog = script('import os, shutil\nshutil.rmtree(os.environ["HIGHWATER_RUN_DIR"])\nraise SystemExit(3)\n');
    const r = await runProfiled([prog]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/the run dir \S+ was removed while .* ran/);
    expect(r.stderr).not.toContain('did not run Python under the shim');
  }, 60_000);
});

describe('highwater run --run-dir: the run dir belongs to one run', () => {
  it('what an earlier run left is removed, not replayed; at the end nothing of the run is left', async () => {
    const rd = freshDir('hw-reuse-');
    copyFileSync(join(fixtures, 'dumps', 'example.dump'), join(rd, `hw-${DEAD_PID}-1.dump`));
    writeFileSync(join(rd, `hw-${DEAD_PID}.state`), deepStateFile(3, MiB, DEAD_PID));
    writeFileSync(join(rd, 'highwater.lock'), `${DEAD_PID}\n`); // a run that died
    writeFileSync(join(rd, 'notes.txt'), 'not ours'); // left alone
    const prog = script('x = bytearray(3 * 1024 * 1024)\n');
    const r = await runProfiled(['--run-dir', rd, prog]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`removed 2 file(s) an earlier run left in ${rd}`);
    const report = onlyReport(r.outDir); // only this run's program: the stale dump was not rendered
    expect(report.process.pid).not.toBe(DEAD_PID);
    expect(r.stderr).not.toContain(`kill -USR2 ${DEAD_PID}`); // the dead pid is not announced
    expect(readdirSync(rd)).toEqual(['notes.txt']);
  }, 60_000);

  it('a run dir claimed by a live run: HW_ERR_RUN_DIR_BUSY, exit 2, the program is not started', async () => {
    const rd = freshDir('hw-busy-');
    writeFileSync(join(rd, 'highwater.lock'), `${process.pid}\n`);
    const marker = join(freshDir('hw-marker-'), 'ran');
    const prog = script(`open(${JSON.stringify(marker)}, "w").close()\n`);
    const r = await runProfiled(['--run-dir', rd, prog]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`the run dir ${rd} is in use by another highwater run (pid ${process.pid})`);
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(join(rd, 'highwater.lock'), 'utf8')).toBe(`${process.pid}\n`);
  }, 60_000);

  it('a --run-dir that does not exist yet is created and claimed', async () => {
    const rd = join(freshDir('hw-new-'), 'a', 'b');
    const r = await runProfiled(['--run-dir', rd, script('x = bytearray(2 * 1024 * 1024)\n')]);
    expect(r.code, r.stderr).toBe(0);
    expect(reportDirs(r.outDir)).toHaveLength(1);
    expect(readdirSync(rd)).toEqual([]);
    mkdirSync(join(rd, 'x')); // still a usable directory
  }, 60_000);
});
