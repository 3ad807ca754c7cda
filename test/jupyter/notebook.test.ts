// Jupyter end to end: `highwater kernel install --prefix`, then nbconvert
// executes a notebook on the kernel "Python 3 with highwater" (Debian's
// ipykernel, jupyter-client, nbconvert, nbformat for /usr/bin/python3).
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReportJson } from '../../sidecar/src/report/model.js';
import { MiB, expectNear, freshDir, readReport, repoRoot, reportDirs, runCli } from '../helpers/cli.js';

const PY = '/usr/bin/python3';
const NEEDED = ['ipykernel', 'jupyter_client', 'nbconvert', 'nbformat', 'numpy'];
const DEBIAN_PACKAGES = ['python3-ipykernel', 'python3-jupyter-client', 'python3-nbconvert', 'python3-nbformat', 'python3-numpy'];

function hasModules(): boolean {
  if (!existsSync(PY)) return false;
  return spawnSync(PY, ['-c', NEEDED.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' }).status === 0;
}

/** Installs Debian's packages when they are missing and we may (root, apt-get). */
function ensureJupyter(): string | undefined {
  if (hasModules()) return undefined;
  if (process.getuid?.() === 0 && existsSync('/usr/bin/apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 240_000 });
    spawnSync('apt-get', ['install', '-y', ...DEBIAN_PACKAGES], { stdio: 'ignore', env, timeout: 240_000 });
    if (hasModules()) return undefined;
  }
  return `${PY} cannot import ${NEEDED.join(', ')} and installing ${DEBIAN_PACKAGES.join(' ')} with apt-get failed (or not root): Jupyter tests skipped`;
}

/**
 * Bytes charged at a line of a notebook cell: stacks whose innermost cell
 * frame (the cell's file, In<n>.py) has that source text at that line.
 */
function bytesAtCellLine(report: ReportJson, code: string, line: number): number {
  let total = 0;
  for (const s of report.stacks) {
    const f = [...s.frames].reverse().find((fr) => /highwater-cells-[^/]+\/In\d+(-\d+)?\.py$/.test(fr.file));
    if (f && f.line === line && f.code === code) total += s.bytes;
  }
  return total;
}

const CELLS = [
  '%load_ext highwater',
  '%%highwater\nx = bytearray(50 * 1024 * 1024)\ny = 6\ny * 7',
  'print(len(x))\nimport numpy as np',
  '%%highwater\nsmall = bytearray(1024)\nz = np.ones((1024, 1024, 4))\ndel x',
  "%%highwater\nboom = bytearray(10 * 1024 * 1024)\nraise ValueError('cell boom')",
];

let skipReason: string | undefined;

beforeAll(() => {
  skipReason = ensureJupyter();
  if (skipReason) console.warn(skipReason);
}, 300_000);

describe('Jupyter kernel "Python 3 with highwater"', () => {
  it('profiles %%highwater cells at their own lines, shows the IFrame, keeps variables, runs again, reports a failing cell', async (ctx) => {
    if (skipReason) ctx.skip();
    const prefix = freshDir('hw-kernel-');
    const inst = await runCli(['kernel', 'install', '--prefix', prefix, '--python', PY]);
    expect(inst.code, inst.stderr).toBe(0);

    const dir = freshDir('hw-nb-');
    const build = [
      'import json, sys, nbformat',
      'nb = nbformat.v4.new_notebook()',
      'nb.cells = [nbformat.v4.new_code_cell(s) for s in json.loads(sys.argv[1])]',
      'nbformat.write(nb, sys.argv[2])',
    ].join('\n');
    const b = spawnSync(PY, ['-c', build, JSON.stringify(CELLS), join(dir, 'in.ipynb')], { encoding: 'utf8' });
    expect(b.status, b.stderr).toBe(0);

    const r = spawnSync(
      PY,
      [
        '-m',
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--ExecutePreprocessor.kernel_name=highwater',
        '--ExecutePreprocessor.timeout=120',
        '--allow-errors',
        '--output',
        'out.ipynb',
        'in.ipynb',
      ],
      { cwd: dir, env: { ...process.env, JUPYTER_PATH: join(prefix, 'share', 'jupyter'), DISPLAY: '' }, encoding: 'utf8', timeout: 180_000 },
    );
    expect(r.status, r.stderr).toBe(0);

    interface Output {
      output_type: string;
      text?: string | string[];
      data?: Record<string, string | string[]>;
      ename?: string;
      evalue?: string;
    }
    const nb = JSON.parse(readFileSync(join(dir, 'out.ipynb'), 'utf8')) as { cells: { outputs: Output[] }[] };
    const text = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join('') : (v ?? ''));
    const html = (i: number) => nb.cells[i]!.outputs.map((o) => text(o.data?.['text/html'])).join('');
    const stdout = (i: number) =>
      nb.cells[i]!.outputs.filter((o) => o.output_type === 'stream')
        .map((o) => text(o.text))
        .join('');

    const reports = reportDirs(join(dir, 'highwater-result'));
    expect(reports).toHaveLength(3);
    // The IFrame of each profiled cell points at its own report.
    for (const [cell, report] of [
      [1, reports[0]!],
      [3, reports[1]!],
      [4, reports[2]!],
    ] as const) {
      const m = /<iframe[^>]*src="([^"]+)"/.exec(html(cell));
      expect(m, html(cell)).not.toBeNull();
      expect(join(dir, m![1]!)).toBe(join(report, 'index.html'));
    }
    // The cell's last expression is its result, and its variables stay in the notebook.
    const result = nb.cells[1]!.outputs.find((o) => o.output_type === 'execute_result');
    expect(text(result?.data?.['text/plain'])).toBe('42');
    expect(stdout(2)).toBe(`${50 * MiB}\n`);

    const first = readReport(reports[0]!);
    expect(first.trigger).toBe('api');
    expectNear(bytesAtCellLine(first, 'x = bytearray(50 * 1024 * 1024)', 2), 50 * MiB);
    const second = readReport(reports[1]!);
    expectNear(bytesAtCellLine(second, 'z = np.ones((1024, 1024, 4))', 3), 32 * MiB);
    // x was allocated before this cell's profile started: not in its peak.
    expect(bytesAtCellLine(second, 'x = bytearray(50 * 1024 * 1024)', 2)).toBe(0);
    expect(second.peakBytes).toBeLessThan(40 * MiB);
    // A failing cell: the error as usual, and the report of what happened.
    const err = nb.cells[4]!.outputs.find((o) => o.output_type === 'error');
    expect([err?.ename, err?.evalue]).toEqual(['ValueError', 'cell boom']);
    expectNear(bytesAtCellLine(readReport(reports[2]!), 'boom = bytearray(10 * 1024 * 1024)', 2), 10 * MiB);
  });

  it('writes kernel.json running ipykernel under `highwater python` with absolute paths', async () => {
    const prefix = freshDir('hw-kernel-');
    const r = await runCli(['kernel', 'install', '--prefix', prefix, '--python', PY]);
    expect(r.code, r.stderr).toBe(0);
    const specDir = join(prefix, 'share', 'jupyter', 'kernels', 'highwater');
    expect(r.stderr).toContain(`kernel "Python 3 with highwater" installed in ${specDir}`);
    const spec = JSON.parse(readFileSync(join(specDir, 'kernel.json'), 'utf8')) as { argv: string[]; display_name: string; language: string };
    expect(spec.display_name).toBe('Python 3 with highwater');
    expect(spec.language).toBe('python');
    expect(spec.argv).toEqual([
      process.execPath,
      join(repoRoot, 'bin', 'highwater.js'),
      'python',
      '--no-browser',
      '--',
      PY,
      '-m',
      'ipykernel_launcher',
      '-f',
      '{connection_file}',
    ]);
  });

  it('--user writes into JUPYTER_DATA_DIR; the python is looked up on PATH; a bad option is a usage error', async () => {
    const data = freshDir('hw-jdata-');
    const binDir = freshDir('hw-bin-');
    const fake = join(binDir, 'mypython');
    writeFileSync(fake, '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    const r = await runCli(['kernel', 'install', '--user', '--python', 'mypython'], {
      env: { JUPYTER_DATA_DIR: data, PATH: `${binDir}:${process.env.PATH}` },
    });
    expect(r.code, r.stderr).toBe(0);
    // That "python" cannot import ipykernel: a warning, the spec is still written.
    expect(r.stderr).toContain(`warning: ${fake} cannot import ipykernel`);
    const spec = JSON.parse(readFileSync(join(data, 'kernels', 'highwater', 'kernel.json'), 'utf8')) as { argv: string[] };
    expect(spec.argv[5]).toBe(fake);

    const bad = await runCli(['kernel', 'install', '--system']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown option --system for highwater kernel install');
    const missing = await runCli(['kernel', 'install', '--prefix', data, '--python', 'no-such-python-hw']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no-such-python-hw not found on PATH');
  });

  it('%load_ext highwater outside the highwater kernel raises a UsageError naming the kernel', (ctx) => {
    if (skipReason) ctx.skip();
    const script = [
      'from IPython.core.interactiveshell import InteractiveShell',
      'from IPython.core.error import UsageError',
      'shell = InteractiveShell.instance()',
      'try:',
      '    shell.extension_manager.load_extension("highwater")',
      'except UsageError as e:',
      '    print("UsageError:", e)',
      'else:',
      '    print("loaded")',
    ].join('\n');
    const r = spawnSync(PY, ['-c', script], {
      env: { ...process.env, PYTHONPATH: join(repoRoot, 'native', 'python'), HOME: freshDir('hw-home-') },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^UsageError: highwater: this kernel does not run under `highwater python`.*Choose the kernel 'Python 3 with highwater'/m);
  });
});
