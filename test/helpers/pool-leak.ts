/** Shared by the tests of test/fixtures/python/pool_leak.py (CLI, watch, Docker). */
import type { ReportJson } from '../../sidecar/src/report/model.js';

/** Bytes at `line` of pool_leak.py in process `pid`'s part of `stacks`. */
export function atLine(stacks: ReportJson['stacks'], pid: number, line: number): number {
  let n = 0;
  for (const s of stacks) {
    if (s.frames[0]?.pid !== pid) continue;
    const own = [...s.frames].reverse().find((f) => f.file.endsWith('pool_leak.py'));
    if (own?.line === line) n += s.bytes;
  }
  return n;
}
