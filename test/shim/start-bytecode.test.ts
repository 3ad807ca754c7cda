// A tracked process's start loads highwater's own modules from the .pycs the
// build made (native/python/compile-bytecode.sh), not by compiling their
// source: that compile was 26 M of the 32 M instructions a tracked
// `python -c pass` added on 3.12, paid again by every process, because
// PYTHONDONTWRITEBYTECODE=1 (set here, as in many images) keeps CPython from
// saving it. `python -v` names where each code object came from.
//
// The .pycs must also survive the copy into an image (new mtimes: hence
// checked-hash, not timestamps), and must never run in place of a source
// that was edited after them.
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshDir, pythons, repoRoot } from '../helpers/cli.js';

/** Where each of highwater's modules came from in a tracked start: module file -> 'pyc' | 'source'. */
function startSources(python: string, pythonDir: string): Map<string, 'pyc' | 'source'> {
  const dir = freshDir('hw-start-bytecode-');
  const r = spawnSync(python, ['-v', '-c', 'print("ran")'], {
    env: {
      ...process.env,
      LD_PRELOAD: join(repoRoot, 'native', 'build', 'libhighwater.so'),
      PYTHONPATH: [join(pythonDir, 'bootstrap'), pythonDir].join(':'),
      HIGHWATER_RUN_DIR: join(dir, 'run'),
      HIGHWATER_MODE: 'run',
      PYTHONDONTWRITEBYTECODE: '1',
    },
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toBe('ran\n');
  expect(r.stderr).not.toContain('highwater: bootstrap failed');
  const from = new Map<string, 'pyc' | 'source'>();
  for (const m of r.stderr.matchAll(/^# code object from '?([^'\n]+)'?$/gm)) {
    const path = m[1]!;
    if (!path.startsWith(pythonDir + '/')) continue;
    const pyc = /^(.*)\/__pycache__\/([^/.]+)\.cpython-\d+\.pyc$/.exec(path);
    if (pyc) from.set(`${pyc[1]}/${pyc[2]}.py`.slice(pythonDir.length + 1), 'pyc');
    else from.set(path.slice(pythonDir.length + 1), 'source');
  }
  return from;
}

const minor = (v: string) => Number(v.split('.')[1]);
const all = pythons().sort((a, b) => minor(a.version) - minor(b.version));

describe('a tracked start loads highwater from bytecode', () => {
  it.each(all.map((p) => [p.version, p.path] as const))('Python %s, from the repository', (_version, exe) => {
    const from = startSources(exe, join(repoRoot, 'native', 'python'));
    // The bootstrap and the modules it always imports.
    for (const module of ['bootstrap/sitecustomize.py', 'highwater/__init__.py', 'highwater/_bootstrap.py'])
      expect(from.get(module), [...from].join('\n')).toBe('pyc');
    expect(
      [...from.values()].filter((v) => v === 'source'),
      [...from].join('\n'),
    ).toEqual([]);
  });

  // The oldest and the newest CPython here: the copy keeps the .pycs usable
  // (an image's COPY and cp -r give the sources new mtimes), and an edit to
  // one source makes its .pyc unused, the others still used.
  const ends = all.length > 1 ? [all[0]!, all[all.length - 1]!] : all;
  it.each(ends.map((p) => [p.version, p.path] as const))('Python %s, copied, then one source edited', (_version, exe) => {
    const copy = join(freshDir('hw-bytecode-copy-'), 'python');
    cpSync(join(repoRoot, 'native', 'python'), copy, { recursive: true, preserveTimestamps: false });
    expect(readdirSync(join(copy, 'highwater', '__pycache__')).length).toBeGreaterThan(0);
    const copied = startSources(exe, copy);
    expect(copied.get('highwater/_bootstrap.py'), [...copied].join('\n')).toBe('pyc');
    expect(copied.get('bootstrap/sitecustomize.py'), [...copied].join('\n')).toBe('pyc');

    appendFileSync(join(copy, 'highwater', '_bootstrap.py'), '\n# edited after the build\n');
    const edited = startSources(exe, copy);
    expect(edited.get('highwater/_bootstrap.py'), [...edited].join('\n')).toBe('source');
    expect(edited.get('bootstrap/sitecustomize.py'), [...edited].join('\n')).toBe('pyc');
  });
});
