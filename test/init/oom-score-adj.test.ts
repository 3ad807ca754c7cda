// highwater-init in single-container mode raises the command's oom_score_adj
// so that the kernel's OOM killer takes the watcher last: the delta for a
// 128 MiB watcher at the cgroup's limit, only with a watcher, only with a
// limit, HIGHWATER_OOM_SCORE_ADJ=0 / N / bad values. Real memory cgroups
// (test/helpers/cgroup.ts); the real OOM is in test/docker/watcher-oom.test.ts.
import { mkdtempSync, readFileSync } from 'node:fs';
import { totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cgroupUnavailable, makeCgroup, type TestCgroup } from '../helpers/cgroup.js';
import { buildInit, cleanEnv, makeFakeBundle, run, type FakeBundle } from './init-helpers.js';

const MiB = 1024 * 1024;
const unavailable = cgroupUnavailable();

/** The kernel's arithmetic (mm/oom_kill.c): adj counts totalpages / 1000 pages. */
function expectedDelta(limitBytes: number): number {
  const unit = Math.floor(limitBytes / 4096 / 1000);
  return Math.min(1000, Math.ceil((128 * MiB) / 4096 / unit));
}

describe.skipIf(unavailable !== null)(`oom_score_adj of the command${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let init: string;
  let watched: FakeBundle;
  let log: string;
  let cg: TestCgroup | undefined;
  const base = Number(readFileSync('/proc/self/oom_score_adj', 'utf8'));

  beforeAll(() => {
    init = buildInit();
    log = join(mkdtempSync(join(tmpdir(), 'hw-oomadj-')), 'watcher');
    // The fake watcher says what its own oom_score_adj is, then waits to be stopped.
    watched = makeFakeBundle({ watcher: `cat /proc/self/oom_score_adj > ${log}; trap 'exit 0' TERM; sleep 30 >/dev/null 2>&1 & wait $!` });
  });
  afterEach(() => cg?.remove());

  /** Runs the init in a new cgroup with that limit; the command prints its oom_score_adj. */
  async function adjIn(limitBytes: number, extra: Record<string, string>) {
    const made = makeCgroup(limitBytes);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    const env = cleanEnv({ HIGHWATER_HOME: watched.home, HIGHWATER_RUN_DIR: join(mkdtempSync(join(tmpdir(), 'hw-oomadj-run-')), 'run'), ...extra });
    const r = await run('sh', ['-c', `${made.enterPrefix} "$0" "$@"`, init, '--', 'sh', '-c', 'cat /proc/self/oom_score_adj'], env);
    expect(r.code, r.stderr).toBe(0);
    return { command: Number(r.stdout.trim()), stderr: r.stderr };
  }

  it('with a watcher and a limit: raised by the delta for a 128 MiB watcher; the watcher keeps its own', async () => {
    for (const limit of [512 * MiB, 300 * MiB]) {
      const r = await adjIn(limit, { HIGHWATER_WATCH: '1' });
      expect(r.command).toBe(Math.min(1000, base + expectedDelta(limit)));
      expect(Number(readFileSync(log, 'utf8'))).toBe(base);
      expect(r.stderr).toBe('');
    }
    expect(expectedDelta(512 * MiB)).toBe(251);
  });

  it('a limit at or above the machine memory, or no watcher: left alone', async () => {
    expect((await adjIn(totalmem() * 2, { HIGHWATER_WATCH: '1' })).command).toBe(base);
    expect((await adjIn(512 * MiB, {})).command).toBe(base);
  });

  it('HIGHWATER_OOM_SCORE_ADJ: 0 turns it off, N is the delta, a bad value is named and auto used', async () => {
    expect((await adjIn(512 * MiB, { HIGHWATER_WATCH: '1', HIGHWATER_OOM_SCORE_ADJ: '0' })).command).toBe(base);
    expect((await adjIn(512 * MiB, { HIGHWATER_WATCH: '1', HIGHWATER_OOM_SCORE_ADJ: '40' })).command).toBe(Math.min(1000, base + 40));
    expect((await adjIn(512 * MiB, { HIGHWATER_WATCH: '1', HIGHWATER_OOM_SCORE_ADJ: 'auto' })).command).toBe(Math.min(1000, base + 251));
    for (const bad of ['lots', '-5', '1001']) {
      const r = await adjIn(512 * MiB, { HIGHWATER_WATCH: '1', HIGHWATER_OOM_SCORE_ADJ: bad });
      expect(r.stderr).toContain(`invalid HIGHWATER_OOM_SCORE_ADJ=${bad} (auto, or 0 to 1000), using auto`);
      expect(r.command).toBe(Math.min(1000, base + 251));
    }
  });
});
