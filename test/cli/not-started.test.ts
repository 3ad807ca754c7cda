// A Python that never loads highwater's bootstrap: `python -I` and `-E`
// ignore PYTHONPATH (where highwater puts it), `-S` skips `site` (which
// imports it). Such a process used to run unprofiled and unguarded without a
// word: `highwater run -- python -I app.py` printed nothing at all and wrote
// no report. Now the shim says so at its start, in the program's stderr, and
// the watcher again when the process ends (HW_ERR_NOT_STARTED); the
// program's output and exit status are its own either way.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freshDir, onlyReport, pythons, reportDirs, runProfiled } from '../helpers/cli.js';

const py = pythons().find((p) => p.version.startsWith('3.12.')) ?? pythons()[0]!;
const dir = freshDir('hw-notstarted-');
const script = join(dir, 'app.py');
writeFileSync(
  script,
  `import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
big = libc.malloc(9 * 1024 * 1024)
print("app ran")
sys.exit(3)
`,
);

describe('a Python that never loads the bootstrap', () => {
  it.each([
    [['-I'], 'I', 'ignores PYTHONPATH'],
    [['-E'], 'E', 'ignores PYTHONPATH'],
    [['-S'], 'S', 'skips `site`'],
    [['-u', '-IS'], 'IS', 'skips `site`'],
    [['-X', 'dev', '-W', 'ignore', '-E'], 'E', 'ignores PYTHONPATH'],
  ])('python %j: said at its start and at its end; output and exit status its own', async (flags, named, why) => {
    const r = await runProfiled(['--', py.path, ...flags, script]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toBe('app ran\n');
    expect(r.stderr).toContain(`highwater: python -${named}: `);
    expect(r.stderr).toContain(why);
    expect(r.stderr).toMatch(new RegExp(`app\\.py \\(pid \\d+\\) ran Python, but highwater's bootstrap never started in it: .*HW_ERR_NOT_STARTED`));
    expect(reportDirs(r.outDir)).toEqual([]);
  });

  it.each([
    [['-s'], 'no user site: the bootstrap still loads'],
    [['-c', 'import runpy, sys; runpy.run_path(sys.argv[2])', '-I'], 'an -I after -c is the program\u2019s'],
  ])('python %j (%s): profiled, nothing said', async (flags) => {
    const r = await runProfiled(['--', py.path, ...flags, script]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).not.toContain('HW_ERR_NOT_STARTED');
    const report = onlyReport(r.outDir);
    expect(report.peakBytes).toBeGreaterThanOrEqual(9 * 1024 * 1024);
  });

  it('the end line shows the command as a shell would take it', async () => {
    const code = "print('ran') ; x = 1";
    const r = await runProfiled(['--', py.path, '-I', '-c', code]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${py.path} -I -c 'print('\\''ran'\\'') ; x = 1' (pid `);
  });

  it('a child started with -I is named; its tracked parent still gets its report', async () => {
    const parent = join(dir, 'parent.py');
    writeFileSync(parent, `import subprocess, sys\nbig = bytearray(12 * 1024 * 1024)\nsubprocess.run([sys.executable, '-I', ${JSON.stringify(script)}])\n`);
    const r = await runProfiled(['--', py.path, parent]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/-I \S+app\.py \(pid \d+\) ran Python, but highwater's bootstrap never started in it/);
    expect(onlyReport(r.outDir).peakBytes).toBeGreaterThanOrEqual(12 * 1024 * 1024);
  });
});
