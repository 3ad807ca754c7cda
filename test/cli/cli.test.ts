/**
 * The real CLI (node bin/highwater.js after `npm run build`) on real
 * processes. Tests that do not need the shim use HIGHWATER_HOME pointing at a
 * temporary bundle whose libhighwater.so is an empty (valid) shared object.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../watcher/helpers.js';

const REPO = join(import.meta.dirname, '../..');
const BIN = join(REPO, 'bin/highwater.js');
const BUILT = existsSync(join(REPO, 'dist/cli/main.js'));
const SHIM = existsSync(join(REPO, 'native/build/libhighwater.so'));
const SCRIPTS = join(REPO, 'test/fixtures/scripts');
let hasCc = true;
try {
  execFileSync('cc', ['--version'], { stdio: 'ignore' });
} catch {
  hasCc = false;
}

function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { ...process.env, DISPLAY: '', WAYLAND_DISPLAY: '', ...opts.env },
    input: opts.input ?? '',
    cwd: opts.cwd,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!BUILT)('highwater CLI (no shim needed)', () => {
  let tmp: string;
  let home: string;
  beforeAll(() => {
    tmp = tempDir('hw-cli-');
    home = join(tmp, 'home');
    mkdirSync(join(home, 'native/build'), { recursive: true });
    mkdirSync(join(home, 'bin'), { recursive: true });
    writeFileSync(join(home, 'bin/highwater.js'), '');
    if (hasCc) execFileSync('cc', ['-shared', '-o', join(home, 'native/build/libhighwater.so'), '-x', 'c', '/dev/null']);
  });
  afterAll(() => removeDir(tmp));

  it('--version prints the package version', () => {
    const r = cli(['--version']);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    expect(r).toMatchObject({ status: 0, stdout: `highwater ${pkg.version}\n` });
  });
  it('--help lists every command and option', () => {
    const r = cli(['--help']);
    expect(r.status).toBe(0);
    for (const s of ['run', 'python', 'render', '-o', '--no-browser', '--disable-oom-detection', '--min-available', '--no-timestamp', '-m', '--']) {
      expect(r.stdout).toContain(s);
    }
  });
  it('an unknown flag is exit 2 naming the flag', () => {
    const r = cli(['run', '--frobnicate', 'x.py']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('highwater: unknown option --frobnicate for highwater run (HW_ERR_USAGE)\nTry `highwater --help`.\n');
  });
  it('a switch given a value is exit 2 saying it takes none, with the code', () => {
    const r = cli(['run', '--limit-threads=yes', 'x.py']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(
      'highwater: option --limit-threads of highwater run takes no value (got --limit-threads=yes) (HW_ERR_USAGE)\nTry `highwater --help`.\n',
    );
  });
  it('an invalid --min-available is exit 2 with the accepted forms', () => {
    const r = cli(['run', '--min-available', '10MB', '--', 'true'], { env: { HIGHWATER_HOME: home } });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--min-available.*accepted forms: bytes/);
  });
  it.skipIf(!hasCc)('unwritable -o: exit 2 naming the path, before the program starts', () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, '');
    const marker = join(tmp, 'marker');
    const out = join(file, 'reports');
    const r = cli(['run', '-o', out, '--', join(SCRIPTS, 'marker.sh'), marker], { env: { HIGHWATER_HOME: home } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(out);
    expect(existsSync(marker)).toBe(false);
  });
  it.skipIf(!hasCc)('-o under /proc (unwritable even for root): exit 2, no hang', () => {
    const marker = join(tmp, 'marker2');
    const r = cli(['run', '-o', '/proc/highwater-out', '--', join(SCRIPTS, 'marker.sh'), marker], { env: { HIGHWATER_HOME: home } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('/proc/highwater-out');
    expect(existsSync(marker)).toBe(false);
  });
  it.skipIf(!hasCc)('non-Python command: stdin, stdout, stderr and exit code pass through; one line, no report', () => {
    const out = join(tmp, 'out-pass');
    const r = cli(['run', '-o', out, '--', join(SCRIPTS, 'passthrough.sh'), '7', '--no-browser'], {
      env: { HIGHWATER_HOME: home },
      input: 'hello from stdin\n',
    });
    expect(r.status).toBe(7);
    expect(r.stdout).toBe('hello from stdin\nargs: 7 --no-browser\n');
    expect(r.stderr).toContain('to stderr\n');
    expect(r.stderr).toMatch(/highwater: .*passthrough\.sh 7 --no-browser did not run Python under the shim; nothing was profiled/);
    expect(r.stderr.match(/^highwater: /gm)).toHaveLength(1);
    expect(r.stderr).not.toMatch(/ld\.so|cannot be preloaded/);
    expect(existsSync(out)).toBe(false); // created for the check, removed since nothing was written
  });
  it.skipIf(!hasCc)('killed by a signal: 128 + N', () => {
    const r = cli(['run', '--', 'sh', '-c', 'kill -TERM $$'], { env: { HIGHWATER_HOME: home }, cwd: tmp });
    expect(r.status).toBe(128 + 15);
  });
  it.skipIf(!hasCc)('a command that does not exist: 127', () => {
    const r = cli(['run', '--', join(tmp, 'no-such-command')], { env: { HIGHWATER_HOME: home }, cwd: tmp });
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/highwater: cannot run .*no-such-command: ENOENT/);
  });
  it('a missing shim is exit 2 naming the path', () => {
    const r = cli(['run', '--', 'true'], { env: { HIGHWATER_HOME: join(tmp, 'nowhere') } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(join(tmp, 'nowhere', 'native/build/libhighwater.so'));
  });
  it.skipIf(!hasCc)('the private run dir is removed at the end', () => {
    const tmpRoot = join(tmp, 'tmproot');
    mkdirSync(tmpRoot);
    const r = cli(['run', '--', 'true'], { env: { HIGHWATER_HOME: home, TMPDIR: tmpRoot }, cwd: tmp });
    expect(r.status).toBe(0);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });
});

// Needs the real shim and renderer (both in the repo once built).
describe.skipIf(!BUILT || !SHIM)('highwater CLI with the shim', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = tempDir('hw-cli-shim-');
  });
  afterAll(() => removeDir(tmp));

  it('profiles a script: report written, exit code passed through', () => {
    const script = join(tmp, 'leak.py');
    writeFileSync(script, 'import sys\nkeep = [bytearray(8 << 20) for _ in range(4)]\nprint("done", sys.argv[1:])\nsys.exit(4)\n');
    const out = join(tmp, 'out');
    const r = cli(['run', '-o', out, '--no-browser', script, 'a', '-o', 'b']);
    expect(r.stdout).toBe("done ['a', '-o', 'b']\n");
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/highwater: report written to .*index\.html/);
    const [sub] = readdirSync(out);
    expect(sub).not.toMatch(/[:.]/);
    const report = JSON.parse(readFileSync(join(out, sub!, 'report.json'), 'utf8')) as { trigger: string; peakBytes: number };
    expect(report.trigger).toBe('exit');
    expect(report.peakBytes).toBeGreaterThanOrEqual(32 << 20);
  });
  it('SIGKILLed program: post-mortem report with trigger killed, exit 137', () => {
    const script = join(tmp, 'killed.py');
    writeFileSync(script, 'import os, signal\nkeep = bytearray(16 << 20)\nos.kill(os.getpid(), signal.SIGKILL)\n');
    const out = join(tmp, 'out-killed');
    const r = cli(['run', '-o', out, '--no-browser', script]);
    expect(r.status).toBe(137);
    const [sub] = readdirSync(out);
    const report = JSON.parse(readFileSync(join(out, sub!, 'report.json'), 'utf8')) as { trigger: string };
    expect(report.trigger).toBe('killed');
  });
});
