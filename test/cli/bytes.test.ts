/**
 * Arguments and environment reach the program byte for byte (issue 8 item 3):
 * Node decodes its argv and environment as UTF-8, so `highwater run` must not
 * hand the program Node's strings. The real CLI is started from bash (the
 * only way to give it bytes that are not UTF-8), and the program prints
 * `repr(sys.argv)` and the raw environment; the output must be identical to
 * the plain run's.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliPath, freshDir, reportDirs } from '../helpers/cli.js';

const PROGRAM = [
  'import os, sys',
  'print(repr(sys.argv))',
  'print(repr(sys.argv[0].encode("utf-8", "surrogateescape")))',
  'print(repr(os.environb.get(b"HW_BYTES")))',
  'print(repr(os.environb.get(b"HW_PLAIN")))',
  'x = bytearray(3 * 1024 * 1024)',
].join('\n');

/** bash -c with `$'…'` escapes: the bytes are made by bash, never by Node. */
function bash(script: string, cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('/bin/bash', ['-c', script], { cwd, encoding: 'latin1', env: { ...process.env, DISPLAY: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('highwater run: the program gets its arguments and environment byte for byte', () => {
  it('invalid UTF-8 in arguments and in environment values: output identical to the plain run', async () => {
    const dir = freshDir('hw-bytes-');
    writeFileSync(join(dir, 'args.py'), PROGRAM);
    const out = join(dir, 'out');
    const args = `args.py $'\\xff\\xfe' '' 'two words' $'caf\\xc3\\xa9' $'\\xed\\xa0\\x80' -m --`;
    const env = `HW_BYTES=$'a\\xffb\\x80' HW_PLAIN=ok`;
    const plain = await bash(`${env} python3 ${args}`, dir);
    const profiled = await bash(`${env} '${process.execPath}' '${cliPath}' run -o '${out}' --no-browser ${args}`, dir);
    expect(plain.code, plain.stderr).toBe(0);
    expect(profiled.code, profiled.stderr).toBe(0);
    expect(plain.stdout).toContain("'\\udcff\\udcfe'"); // the bytes, as Python shows undecodable ones
    expect(plain.stdout).toContain("b'a\\xffb\\x80'");
    expect(profiled.stdout).toBe(plain.stdout);
    expect(reportDirs(out)).toHaveLength(1); // and it was profiled
  }, 60_000);

  it('a script whose name is not UTF-8 opens, and is profiled', async () => {
    const dir = freshDir('hw-bytes-');
    writeFileSync(Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0x73, 0xff, 0x2e, 0x70, 0x79])]), PROGRAM); // "s\xff.py"
    const out = join(dir, 'out');
    const plain = await bash(`python3 $'s\\xff.py' x`, dir);
    const profiled = await bash(`'${process.execPath}' '${cliPath}' run -o '${out}' --no-browser $'s\\xff.py' x`, dir);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).toContain("b's\\xff.py'");
    expect(profiled.code, profiled.stderr).toBe(0);
    expect(profiled.stdout).toBe(plain.stdout);
    expect(reportDirs(out)).toHaveLength(1);
  }, 60_000);

  it('a command that is not there still says ENOENT and exits 127', async () => {
    const dir = freshDir('hw-bytes-');
    const r = await bash(`'${process.execPath}' '${cliPath}' run -o '${join(dir, 'out')}' --no-browser -- $'no-such-\\xff-command'`, dir);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/highwater: cannot run no-such-.*-command: ENOENT/);
  }, 60_000);
});
