// The baseline every highwater result is compared with: the OOM job WITHOUT
// highwater under a 400 MiB limit is killed by the kernel (137, no clue).
// Real Docker engine; run alone with `npx vitest run test/docker`.
import { beforeAll, describe, expect, it } from 'vitest';
import { docker, ensureBases, ensureEngine, oomJob } from '../helpers/docker.js';

const engine = ensureEngine();
if (!engine.ok) console.warn(`skipping Docker tests: ${engine.reason}`);

describe.skipIf(!engine.ok)('docker: baseline without highwater', () => {
  beforeAll(() => ensureBases('highwater-base:bookworm'), 1_800_000);

  it('the OOM job is killed by the kernel: exit 137', async () => {
    const r = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--memory',
      '400m',
      '--memory-swap',
      '400m',
      '-e',
      'PYTHONUNBUFFERED=1',
      '-v',
      `${oomJob}:/app/job.py:ro`,
      'highwater-base:bookworm',
      'python3',
      '/app/job.py',
    ]);
    expect(r.code, r.stderr).toBe(137);
    expect(r.stdout).toMatch(/step \d+: holding \d+ MiB/);
  });
});
