// The bootstrap is a sitecustomize.py first on PYTHONPATH, and hands over to
// the one the environment already had (Debian's python3 ships one; projects
// put their own on PYTHONPATH). A program that imports `sitecustomize` by
// name must get that one, as without highwater: it used to get the
// bootstrap's (its attributes gone, AttributeError). An error in it reads as
// it would without highwater, and the program runs on, tracked.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pythons } from '../helpers/cli.js';
import { shimmedEnv } from './shimmed.js';

const probe =
  "import sitecustomize, sys; print(sitecustomize.__file__, sitecustomize.__name__, getattr(sitecustomize, 'MARK', None)); print('highwater' in sys.modules)";

function siteDir(body: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'hw-site-'));
  writeFileSync(join(dir, 'sitecustomize.py'), body);
  return dir;
}

function both(exe: string, args: string[], userPath?: string) {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  if (userPath) env.PYTHONPATH = userPath;
  else delete env.PYTHONPATH;
  const plain = spawnSync(exe, args, { env, encoding: 'utf8' });
  const rd = join(mkdtempSync(join(tmpdir(), 'hw-site-rd-')), 'run');
  mkdirSync(rd);
  const shimmed = shimmedEnv(rd);
  if (userPath) shimmed.PYTHONPATH = `${shimmed.PYTHONPATH}:${userPath}`;
  const shim = spawnSync(exe, args, { env: shimmed, encoding: 'utf8' });
  return { plain, shim };
}

const interpreters = [pythons()[0]!, pythons()[pythons().length - 1]!].map((p) => [p.version, p.path]);

describe('the sitecustomize the environment had', () => {
  it.each(interpreters)('Python %s, one on PYTHONPATH: `import sitecustomize` gives it', (_v, exe) => {
    const { plain, shim } = both(exe, ['-c', probe], siteDir('MARK = "the project\'s"\n'));
    expect(plain.stdout).toMatch(/sitecustomize\.py sitecustomize the project's\nFalse\n$/);
    expect(shim.stderr).toBe('');
    expect(shim.stdout).toBe(plain.stdout.replace(/False\n$/, 'True\n'));
  });

  it.skipIf(!existsSync('/usr/bin/python3'))("Debian's python3, its own: `import sitecustomize` gives it", () => {
    const { plain, shim } = both('/usr/bin/python3', ['-c', probe]);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^\/(usr|etc)\/\S*sitecustomize\.py sitecustomize None\nFalse\n$/);
    expect(shim.stdout).toBe(plain.stdout.replace(/False\n$/, 'True\n'));
  });

  it.each(interpreters)('Python %s, one that raises: the same message, and the program runs on, tracked', (_v, exe) => {
    const { plain, shim } = both(exe, ['-c', "import sys; print('highwater' in sys.modules)"], siteDir('raise RuntimeError("broken site")\n'));
    expect(plain.stderr).toContain('Error in sitecustomize; set PYTHONVERBOSE for traceback:\nRuntimeError: broken site');
    expect(shim.stderr).toBe(plain.stderr);
    expect(plain.stdout).toBe('False\n');
    expect(shim.stdout).toBe('True\n');
  });
});
