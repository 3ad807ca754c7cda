// `highwater kernel install`: argument parsing and where the spec goes (pure parts of cli/kernel.ts).
import { describe, expect, it } from 'vitest';
import { parseArgs } from '../../sidecar/src/cli/args.js';
import { kernelDir, kernelSpec, resolvePython, userDataDir } from '../../sidecar/src/cli/kernel.js';

describe('highwater kernel install: arguments', () => {
  it('defaults to --user and takes --prefix DIR, --prefix=DIR and --python EXE', () => {
    expect(parseArgs(['kernel', 'install'])).toEqual({ cmd: 'kernel-install', location: { kind: 'user' } });
    expect(parseArgs(['kernel', 'install', '--prefix', '/p', '--python', 'py3'])).toEqual({
      cmd: 'kernel-install',
      location: { kind: 'prefix', dir: '/p' },
      python: 'py3',
    });
    expect(parseArgs(['kernel', 'install', '--prefix=/q'])).toEqual({ cmd: 'kernel-install', location: { kind: 'prefix', dir: '/q' } });
    expect(parseArgs(['kernel'])).toEqual({ cmd: 'help', topic: 'kernel' });
  });

  it('refuses both locations, a missing value, unknown actions and options', () => {
    expect(() => parseArgs(['kernel', 'install', '--user', '--prefix', '/p'])).toThrow(/one of --user and --prefix/);
    expect(() => parseArgs(['kernel', 'install', '--prefix'])).toThrow(/--prefix needs a value/);
    expect(() => parseArgs(['kernel', 'remove'])).toThrow(/unknown kernel action remove/);
    expect(() => parseArgs(['kernel', 'install', '--sys-prefix'])).toThrow(/unknown option --sys-prefix/);
  });
});

describe('kernel spec location and contents', () => {
  it('finds the user data dir as jupyter_core does on Linux', () => {
    expect(userDataDir({ JUPYTER_DATA_DIR: '/j' }, '/home/u')).toBe('/j');
    expect(userDataDir({ XDG_DATA_HOME: '/x' }, '/home/u')).toBe('/x/jupyter');
    expect(userDataDir({}, '/home/u')).toBe('/home/u/.local/share/jupyter');
    expect(kernelDir({ kind: 'user' }, {}, '/home/u')).toBe('/home/u/.local/share/jupyter/kernels/highwater');
    expect(kernelDir({ kind: 'prefix', dir: '/opt/env' }, { JUPYTER_DATA_DIR: '/j' }, '/h')).toBe('/opt/env/share/jupyter/kernels/highwater');
  });

  it('runs ipykernel under `highwater python` with the given absolute paths', () => {
    const spec = kernelSpec({ cli: '/hw/bin/highwater.js' }, '/n/node', '/v/bin/python');
    expect(spec.argv.slice(0, 6)).toEqual(['/n/node', '/hw/bin/highwater.js', 'python', '--no-browser', '--', '/v/bin/python']);
    expect(spec.argv.slice(6)).toEqual(['-m', 'ipykernel_launcher', '-f', '{connection_file}']);
    expect(spec.display_name).toBe('Python 3 with highwater');
  });

  it('makes a relative --python absolute without resolving symlinks (venvs)', () => {
    expect(resolvePython('venv/bin/python', {})).toBe(`${process.cwd()}/venv/bin/python`);
    expect(resolvePython('/usr/bin/python3', {})).toBe('/usr/bin/python3');
    expect(() => resolvePython('no-such-python-hw', { PATH: '/nonexistent' })).toThrow(/not found on PATH/);
  });
});
