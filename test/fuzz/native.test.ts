// The shim's readers (control lines, /proc and cgroup files, HIGHWATER_*
// values) under libFuzzer with ASan+UBSan, 10 s per target from the seeds in
// test/fuzz/seeds/<target>/: any crash, sanitizer report, leak or hang fails.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { freshDir, repoRoot } from '../helpers/cli.js';

const TARGETS = ['control_line', 'cgroup_files', 'stat_files', 'floor_env'];
const SECONDS = 10;

describe('native fuzz targets', () => {
  it(`each runs ${SECONDS} s without a finding`, async () => {
    const out = freshDir('hw-fuzz-');
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        join(repoRoot, 'test', 'fuzz', 'run-native.sh'),
        [String(SECONDS), ...TARGETS],
        {
          env: { ...process.env, HW_FUZZ_OUT: out },
          timeout: (SECONDS * TARGETS.length + 120) * 1000,
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
    expect(r.code, r.stderr.slice(-4000)).toBe(0);
    for (const t of TARGETS) {
      const m = new RegExp(`fuzz ${t}: ok, (\\d+) inputs`).exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(1000); // it really ran
    }
  }, 300_000);
});
