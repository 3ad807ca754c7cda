/**
 * `highwater watch` logs the top lines after the report path (issue 13: a
 * `kubectl logs` reader has the answer without opening anything). Real
 * watcher, real Python process under the shim (the watch suite's fixture).
 */
import { expect, test } from 'vitest';
import { freshDir } from '../helpers/cli.js';
import { startPython, startWatch, watchLine } from '../watcher/processes.js';

test('watch --once: report path, then "top lines at the peak:" and the held line with its bytes and source', async () => {
  const runDir = freshDir('hw-run-');
  const out = freshDir('hw-out-');
  const py = startPython(runDir, { STEPS: '3', STEP_MIB: '4', EXIT_CODE: '0' });
  expect((await py.exited).code).toBe(0);
  const w = startWatch(runDir, out, ['--once']);
  expect((await w.exited).code, w.stderr()).toBe(0);
  const lines = w.stderr().split('\n');
  const at = lines.findIndex((l) => /^highwater: report written to .*index\.html \(exit, peak /.test(l));
  expect(at, w.stderr()).toBeGreaterThanOrEqual(0);
  expect(lines[at + 1]).toBe('highwater: top lines at the peak:');
  // 3 blocks of 4 MiB + 1 byte each, all allocated at the WATCH-LINE.
  expect(lines[at + 2]).toMatch(
    new RegExp(`^highwater: +12\\.0 MiB +hold\\.py:${watchLine} +\\S+ +return bytearray\\(STEP_MIB \\* 1024 \\* 1024\\)  # WATCH-LINE$`),
  );
}, 60_000);
