// `collect docker` against a real engine, with a report written by a plain
// container (the shim is not needed for this): list by label, copy out of a
// stopped container through the archive API, follow the event stream.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectDocker, ENABLED_LABEL } from '../../sidecar/src/docker/collect.js';
import { cleanup, docker, ensureBases, ensureEngine, uniqueName } from '../helpers/docker.js';

const engine = ensureEngine();
if (!engine.ok) console.warn(`skipping Docker tests: ${engine.reason}`);

const log = pino({ level: 'silent' });
const report = {
  version: 1,
  trigger: 'oom',
  oomReason: 'low-available',
  oomAllocation: null,
  peakBytes: 367001600,
  process: { pid: 7, argv: ['python3', 'job.py'], python: '3.11.2' },
  memory: { source: 'cgroup-v2', limitBytes: 419430400, workingSetBytes: 0, availableBytes: 0, swapBytes: 0 },
  stacks: [
    {
      bytes: 367001600,
      frames: [
        { file: '/app/job.py', line: 70, function: '<module>', code: 'sys.exit(main())' },
        { file: '/app/job.py', line: 31, function: 'load_batch', code: 'return np.ones(STEP_MIB * 1024 * 1024 // 8, dtype=np.float64)' },
      ],
    },
  ],
};

/** A container that writes one report directory and exits 53, like an OOM'd job. */
function fakeJob(name: string, dir: string, extra: string[] = []): string[] {
  const script = `mkdir -p /reports/${dir} && cat > /reports/${dir}/report.json <<'J'\n${JSON.stringify(report)}\nJ\necho '<html></html>' > /reports/${dir}/index.html; sleep \${DELAY:-0}; exit 53`;
  return ['run', '--name', name, '--network', 'none', '--label', ENABLED_LABEL, ...extra, 'highwater-base:bookworm', 'sh', '-c', script];
}

describe.skipIf(!engine.ok)('docker: collect docker', () => {
  const containers: string[] = [];
  beforeAll(() => ensureBases('highwater-base:bookworm'), 1_800_000);
  afterAll(() => cleanup(containers));

  it('copies the report out of a stopped labelled container and prints a row', async () => {
    const name = uniqueName('hw-collect');
    containers.push(name);
    const r = await docker(fakeJob(name, '20250101T120000Z'));
    expect(r.code, r.stderr).toBe(53);
    const out = mkdtempSync(join(tmpdir(), 'hw-collected-'));
    const lines: string[] = [];
    const rows = await collectDocker({ output: out, print: (l) => lines.push(l) }, log);
    const mine = rows.filter((x) => x.container === name);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ exitCode: 53, peakBytes: 367001600, trigger: 'oom' });
    expect(mine[0]!.topLine).toBe('job.py:31 return np.ones(STEP_MIB * 1024 * 1024 // 8, dtype=np.float64)');
    expect(mine[0]!.reportPath).toBe(join(out, name, '20250101T120000Z'));
    expect(JSON.parse(readFileSync(join(mine[0]!.reportPath, 'report.json'), 'utf8')).peakBytes).toBe(367001600);
    expect(lines[0]).toMatch(/^CONTAINER\s+EXIT\s+PEAK\s+TOP LINE\s+REPORT$/);
    expect(lines.some((l) => l.includes(name.slice(0, 20)) && l.includes('350.0 MiB') && l.includes(mine[0]!.reportPath))).toBe(true);

    // A second run finds nothing new.
    const again = await collectDocker({ output: out }, log);
    expect(again.filter((x) => x.container === name)).toEqual([]);
  });

  it('--follow collects when a labelled container dies', async () => {
    const out = mkdtempSync(join(tmpdir(), 'hw-collected-'));
    const ac = new AbortController();
    const seen: string[] = [];
    const name = uniqueName('hw-follow');
    containers.push(name);
    const running = collectDocker(
      {
        output: out,
        follow: true,
        signal: ac.signal,
        print: (l) => {
          seen.push(l);
          if (l.includes(out) && l.includes(name.slice(0, 20))) ac.abort();
        },
      },
      log,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const r = await docker(fakeJob(name, '20250102T000000Z', ['-e', 'DELAY=1']));
    expect(r.code).toBe(53);
    const timer = setTimeout(() => ac.abort(), 60_000);
    const rows = await running;
    clearTimeout(timer);
    expect(rows.find((x) => x.container === name)?.exitCode).toBe(53);
  });
});
