// Stack switching (greenlet, so gevent and eventlet) and the walk's
// data-stack proof (native/shim/datastack.c, "Stack switching"). Greenlets
// share the thread state's chunk cache (3.13.13+, 3.14.4+, 3.15): one can
// take the chunk another just popped, whose next pop then unmaps nothing,
// and a caller a chunk further down runs unseen. On those CPythons the
// proof stops once switching is seen: greenlet imported (an audit hook),
// greenlet's extension loaded (the control thread's tick), or a thread's
// root chunk replaced under the same thread state (any other switcher).
//
// What CI can show without greenlet (no PyPI): each of the three signals,
// with a stand-in package named greenlet, a shared object named like its
// extension, and a callable run on a chain of its own
// (test/fixtures/native/fresh_chain.c). The report itself, with greenlet:
// HIGHWATER_TEST_GREENLET="PYTHON:DIR" (DIR holding a greenlet built for
// PYTHON) runs test/fixtures/python/greenlet_steal.py; on Debian's 3.14.10
// with greenlet 3.5.4.dev0 built from its source, the shim before the guard
// charged both 4 MiB blocks to line A, sampled at 256 KiB.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesAtLine, expectNear, fixtures, freshDir, lineOf, MiB, onlyReport, ownSlack, pythons, runProfiled } from '../helpers/cli.js';
import { buildTestLib } from '../helpers/native.js';

const watch = join(fixtures, 'python', 'stack_switch_watch.py');
const steal = join(fixtures, 'python', 'greenlet_steal.py');

/** What the event hands the program: the stand-in package's directory, or a file to load. */
function eventArg(mode: string, version: string): string {
  const dir = freshDir('hw-switch-');
  if (mode === 'import') {
    mkdirSync(join(dir, 'greenlet'));
    writeFileSync(join(dir, 'greenlet', '__init__.py'), '');
    return dir;
  }
  if (mode === 'load') {
    const tag = version.split('.').slice(0, 2).join('');
    const so = join(dir, `_greenlet.cpython-${tag}-x86_64-linux-gnu.so`);
    copyFileSync(buildTestLib('hwtest'), so);
    return so;
  }
  return buildTestLib('fresh_chain');
}

// Every 3.11+ found; those without a cache of their own also as if they
// had one (HIGHWATER_TEST_CHUNK_CACHE=1, slack 1), so that CI without
// Debian's interpreters still sees the guard stop the proof.
const variants = pythons()
  .filter((p) => ownSlack(p.version) >= 0)
  .flatMap((p) =>
    ownSlack(p.version) === 1
      ? [{ ...p, label: 'its own chunk cache', slack: 1, env: {} }]
      : [
          { ...p, label: 'no chunk cache', slack: 0, env: {} },
          { ...p, label: 'a cache played (HIGHWATER_TEST_CHUNK_CACHE=1)', slack: 1, env: { HIGHWATER_TEST_CHUNK_CACHE: '1' } },
        ],
  );
const modes = ['import', 'load', 'fresh'] as const;
const cases = variants.flatMap((v) => modes.map((mode) => [v.version, v.label, mode, v] as const));

describe('stack switching stops the data-stack proof where a chunk cache is shared', () => {
  it('has interpreters to try', () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  it.each(cases)('Python %s, %s: %s', async (version, label, mode, v) => {
    const r = await runProfiled(['--', v.path, watch, mode, eventArg(mode, version)], { timeoutMs: 60_000, env: v.env });
    const where = `Python ${version}, ${label}, ${mode}\n${r.stdout}\n${r.stderr}`;
    expect(r.code, where).toBe(0);
    expect(/^before (.+)$/m.exec(r.stdout)?.[1], where).toBe(`0 ${v.slack}`);
    // The audit hook is there only where the proof allows for a cache.
    const seen = mode === 'import' ? v.slack === 1 : true;
    expect(/^after (.+)$/m.exec(r.stdout)?.[1], where).toBe(seen ? `1 ${v.slack === 1 ? -1 : 0}` : `0 ${v.slack}`);
  });
});

const [greenletPython, greenletPath] = (process.env.HIGHWATER_TEST_GREENLET ?? '').split(':');
describe.runIf(greenletPython && greenletPath)('with greenlet: a chunk taken by another greenlet', () => {
  it.each([
    ['exact', []],
    ['sampled', ['--sample-rate', '262144']],
  ] as const)('%s: each 4 MiB at the line that was running', async (_mode, flags) => {
    const r = await runProfiled(['--', greenletPython!, steal, '38'], { timeoutMs: 60_000, flags: [...flags], env: { PYTHONPATH: greenletPath! } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('chunk taken by another greenlet: True');
    const report = onlyReport(r.outDir);
    const atLine = (marker: string) =>
      report.stacks
        .filter((s) => s.frames.some((f) => f.file.endsWith('greenlet_steal.py') && f.line === lineOf(steal, marker)))
        .filter((s) => s.frames.at(-1)?.line === lineOf(steal, '# SITE'))
        .reduce((n, s) => n + s.bytes, 0);
    expectNear(atLine('# LINE-A'), 4 * MiB);
    expectNear(atLine('# LINE-B'), 4 * MiB);
    expect(bytesAtLine(report, 'greenlet_steal.py', lineOf(steal, '# SITE'))).toBeGreaterThan(8 * MiB - 1);
  });
});
