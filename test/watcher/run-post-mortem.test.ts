// `highwater run` through the one run-dir watcher: a program that ends
// without its exit dump gets the post-mortem whose trigger comes from its
// wait status (docs/protocol.md "Post-mortem reports"), the bytes at the line
// it really allocated them, and the exit status it really had.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesAtLine, freshDir, MiB, onlyReport, reportDirs, runCli, runProfiled } from '../helpers/cli.js';

/** A script that holds 6 MiB (+1: bytearray's NUL) allocated at line 2, then ends by `end`. */
function script(end: string): string {
  const path = join(freshDir('hw-script-'), 'ends.py');
  writeFileSync(path, ['import os', 'held = bytearray(6 * 1024 * 1024)', end, ''].join('\n'));
  return path;
}

describe('highwater run: post-mortems by the wait status of its program', () => {
  it('a fatal signal (os.abort): exit 134, a `signal` report with the bytes at their line', async () => {
    const r = await runProfiled([script('os.abort()')]);
    expect(r.code, r.stderr).toBe(134);
    const report = onlyReport(r.outDir);
    expect(report.trigger).toBe('signal');
    expect(bytesAtLine(report, 'ends.py', 2)).toBe(6 * MiB + 1);
  }, 60_000);

  it('os._exit(3) while tracking: exit 3, an `exit` report from the state file', async () => {
    const r = await runProfiled([script('os._exit(3)')]);
    expect(r.code, r.stderr).toBe(3);
    const report = onlyReport(r.outDir);
    expect(report.trigger).toBe('exit');
    expect(bytesAtLine(report, 'ends.py', 2)).toBe(6 * MiB + 1);
  }, 60_000);

  it('highwater python, tracking never on, os._exit(3): exit 3 and no report', async () => {
    const outDir = freshDir('hw-out-');
    const r = await runCli(['python', '-o', outDir, '--no-browser', script('os._exit(3)')]);
    expect(r.code, r.stderr).toBe(3);
    expect(reportDirs(outDir)).toEqual([]);
  }, 60_000);
});
