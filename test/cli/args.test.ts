import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { parseArgs, rawTargetArgv, rawUserArgs, shellText, splitNul, targetArgv } from '../../sidecar/src/cli/args.js';
import { exitStatusForError } from '../../sidecar/src/cli/exit.js';

function usageError(argv: string[]): string {
  try {
    parseArgs(argv);
  } catch (e) {
    expect(isHighwaterError(e, 'HW_ERR_USAGE')).toBe(true);
    return (e as Error).message;
  }
  throw new Error(`expected a usage error for ${argv.join(' ')}`);
}

describe('parseArgs', () => {
  it('--version, --help', () => {
    expect(parseArgs(['--version'])).toEqual({ cmd: 'version' });
    expect(parseArgs(['--help'])).toEqual({ cmd: 'help', topic: 'main' });
    expect(parseArgs(['-h'])).toEqual({ cmd: 'help', topic: 'main' });
    expect(parseArgs(['run', '--help'])).toEqual({ cmd: 'help', topic: 'run' });
    expect(parseArgs(['render', '-h'])).toEqual({ cmd: 'help', topic: 'render' });
  });
  it('run script.py args: options after the script belong to the script', () => {
    expect(parseArgs(['run', 'script.py', '-o', 'x', '--no-browser', '--', 'y'])).toEqual({
      cmd: 'run',
      mode: 'run',
      flags: {},
      target: { kind: 'script', script: 'script.py', args: ['-o', 'x', '--no-browser', '--', 'y'] },
    });
  });
  it('every run option', () => {
    expect(parseArgs(['run', '-o', 'out', '--no-browser', '--disable-oom-detection', '--min-available', '500MiB', '--run-dir', '/rd', 's.py'])).toEqual({
      cmd: 'run',
      mode: 'run',
      flags: { outputDir: 'out', openBrowser: false, oomDetection: false, minAvailable: '500MiB', runDir: '/rd' },
      target: { kind: 'script', script: 's.py', args: [] },
    });
    expect(parseArgs(['run', '--sample-rate', '256KiB', '--limit-threads', 's.py'])).toMatchObject({ flags: { sampleRate: '256KiB', limitThreads: true } });
    expect(parseArgs(['run', '--sample-rate=0', '--no-limit-threads', 's.py'])).toMatchObject({ flags: { sampleRate: '0', limitThreads: false } });
  });
  it('--opt=value, --output, -oDIR', () => {
    expect(parseArgs(['run', '--output=o1', '--min-available=5%', 's.py'])).toMatchObject({
      flags: { outputDir: 'o1', minAvailable: '5%' },
    });
    expect(parseArgs(['run', '--output', 'o2', 's.py'])).toMatchObject({ flags: { outputDir: 'o2' } });
    expect(parseArgs(['run', '-oo3', 's.py'])).toMatchObject({ flags: { outputDir: 'o3' } });
  });
  it('-m module args', () => {
    expect(parseArgs(['run', '--no-browser', '-m', 'pkg.cli', '--flag', '-m', 'x'])).toEqual({
      cmd: 'run',
      mode: 'run',
      flags: { openBrowser: false },
      target: { kind: 'module', module: 'pkg.cli', args: ['--flag', '-m', 'x'] },
    });
  });
  it('-- command args', () => {
    expect(parseArgs(['run', '--', '/usr/bin/python3.13', 'script.py', 'a', '--b'])).toMatchObject({
      target: { kind: 'command', argv: ['/usr/bin/python3.13', 'script.py', 'a', '--b'] },
    });
  });
  it('python mode', () => {
    expect(parseArgs(['python', 'script.py', 'arg'])).toEqual({
      cmd: 'run',
      mode: 'python',
      flags: {},
      target: { kind: 'script', script: 'script.py', args: ['arg'] },
    });
  });
  it('render', () => {
    expect(parseArgs(['render', 'a.dump', '-o', 'out', '--no-timestamp'])).toEqual({
      cmd: 'render',
      dump: 'a.dump',
      flags: { outputDir: 'out', timestampedSubdir: false },
    });
    expect(parseArgs(['render', '-o', 'out', 'a.dump'])).toEqual({ cmd: 'render', dump: 'a.dump', flags: { outputDir: 'out' } });
  });
  it('render --children, --child-states and --since also as --name=value', () => {
    expect(parseArgs(['render', 'a.dump', '-o', 'out', '--children=c', '--child-states=run', '--since=17'])).toMatchObject({
      children: 'c',
      childStates: { runDir: 'run', sinceMs: 17 },
    });
  });
  it('render --children with --child-states and --since (highwater.api.profile())', () => {
    expect(parseArgs(['render', 'a.dump', '-o', 'out', '--children', 'c', '--child-states', 'run', '--since', '1700000000123'])).toEqual({
      cmd: 'render',
      dump: 'a.dump',
      flags: { outputDir: 'out' },
      children: 'c',
      childStates: { runDir: 'run', sinceMs: 1700000000123 },
    });
  });

  it('usage errors name the problem', () => {
    expect(usageError([])).toMatch(/no command/);
    expect(usageError(['frobnicate'])).toMatch(/unknown command frobnicate/);
    expect(usageError(['--frob'])).toMatch(/unknown option --frob/);
    expect(usageError(['run', '--frob', 's.py'])).toMatch(/unknown option --frob/);
    expect(usageError(['run', '--frob=1', 's.py'])).toMatch(/unknown option --frob\b/);
    expect(usageError(['run', '-x', 's.py'])).toMatch(/unknown option -x/);
    // A switch given a value: a known option used wrongly, not an unknown one.
    expect(usageError(['run', '--no-children=1', 's.py'])).toBe('option --no-children of highwater run takes no value (got --no-children=1)');
    expect(usageError(['render', 'a', '-o', 'x', '--no-timestamp=0'])).toMatch(/option --no-timestamp of highwater render takes no value/);
    expect(usageError(['watch', '--once=yes'])).toMatch(/option --once of highwater watch takes no value/);
    expect(usageError(['collect', 'docker', '--follow=1'])).toMatch(/option --follow of highwater collect docker takes no value/);
    expect(usageError(['collect', 'kubernetes', '-A', '--all-namespaces=true'])).toMatch(
      /option --all-namespaces of highwater collect kubernetes takes no value/,
    );
    expect(usageError(['kernel', 'install', '--user=me'])).toMatch(/option --user of highwater kernel install takes no value/);
    expect(usageError(['run'])).toMatch(/no program given/);
    expect(usageError(['run', '--no-browser'])).toMatch(/no program given/);
    expect(usageError(['run', '-m'])).toMatch(/no module/);
    expect(usageError(['run', '--'])).toMatch(/no command given/);
    expect(usageError(['run', '-o'])).toMatch(/-o needs a value/);
    expect(usageError(['run', '--min-available'])).toMatch(/--min-available needs a value/);
    expect(usageError(['render', 'a.dump'])).toMatch(/-o DIR is required/);
    expect(usageError(['render', '-o', 'x'])).toMatch(/no DUMP/);
    expect(usageError(['render', 'a', 'b', '-o', 'x'])).toMatch(/exactly one DUMP/);
    expect(usageError(['render', '--open', 'a', '-o', 'x'])).toMatch(/unknown option --open/);
    expect(usageError(['render', 'a', '-o', 'x', '--children', 'c', '--child-states', 'r'])).toMatch(/--child-states DIR and --since MS go together/);
    expect(usageError(['render', 'a', '-o', 'x', '--children', 'c', '--child-states', 'r', '--since', '12x'])).toMatch(
      /--since takes wall-clock milliseconds \(got 12x\)/,
    );
    expect(usageError(['render', 'a', '-o', 'x', '--child-states', 'r', '--since', '12'])).toMatch(/--child-states needs --children DIR/);
  });
});

describe('targetArgv', () => {
  it('script, module, command', () => {
    expect(targetArgv({ kind: 'script', script: 's.py', args: ['a'] }, 'python3')).toEqual(['python3', 's.py', 'a']);
    expect(targetArgv({ kind: 'module', module: 'm', args: ['a'] }, 'py')).toEqual(['py', '-m', 'm', 'a']);
    expect(targetArgv({ kind: 'command', argv: ['x', 'y'] }, 'py')).toEqual(['x', 'y']);
  });
});

describe('exitStatusForError', () => {
  it('usage, config and output errors are 2, others 1', () => {
    expect(exitStatusForError('HW_ERR_USAGE')).toBe(2);
    expect(exitStatusForError('HW_ERR_CONFIG')).toBe(2);
    expect(exitStatusForError('HW_ERR_OUTPUT_UNWRITABLE')).toBe(2);
    expect(exitStatusForError('HW_ERR_CONTROL')).toBe(1);
    expect(exitStatusForError('HW_ERR_INTERNAL')).toBe(1);
  });
});

describe("raw arguments (bytes the kernel gave, not Node's UTF-8 decoding)", () => {
  const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  const cmdline = b('node\0--enable-source-maps\0/h/bin/highwater.js\0run\0-o\0out\0s.py\0', [0xff, 0xfe], '\0\0x y\0');
  const decoded = ['run', '-o', 'out', 's.py', '\ufffd\ufffd', '', 'x y'];

  it('splitNul keeps empty fields and the last unterminated one', () => {
    expect(splitNul(b('a\0\0b')).map(String)).toEqual(['a', '', 'b']);
    expect(splitNul(b('a\0')).map(String)).toEqual(['a']);
  });

  it('the user arguments are the last fields of /proc/self/cmdline, whatever node options came before', () => {
    const raw = rawUserArgs(cmdline, decoded)!;
    expect(raw.map((x) => x.toString('utf8'))).toEqual(decoded);
    expect(raw[4]).toEqual(Buffer.from([0xff, 0xfe]));
  });

  it('no raw arguments when they do not decode to what Node gave (not our argv)', () => {
    expect(rawUserArgs(cmdline, ['run', '-o', 'out', 's.py', 'other', '', 'x y'])).toBeUndefined();
    expect(rawUserArgs(b('node\0'), decoded)).toBeUndefined();
  });

  it('the target takes its own words from the end of the raw arguments', () => {
    const raw = rawUserArgs(cmdline, decoded)!;
    const cmd = parseArgs(decoded);
    if (cmd.cmd !== 'run') throw new Error('expected run');
    const argv = rawTargetArgv(cmd.target, 'python3', raw);
    expect(argv.map((x) => x.toString('utf8'))).toEqual(targetArgv(cmd.target, 'python3'));
    expect(argv[2]).toEqual(Buffer.from([0xff, 0xfe]));
    const mod = parseArgs(['run', '-m', 'pkg', 'a']);
    if (mod.cmd !== 'run') throw new Error('expected run');
    expect(rawTargetArgv(mod.target, 'py', [b('run'), b('-m'), b('pkg'), b('a')]).map(String)).toEqual(['py', '-m', 'pkg', 'a']);
    const command = parseArgs(['run', '--', 'env', 'A']);
    if (command.cmd !== 'run') throw new Error('expected run');
    expect(rawTargetArgv(command.target, 'py', [b('run'), b('--'), b('env'), b('A')]).map(String)).toEqual(['env', 'A']);
  });

  it('shellText quotes what a shell would split or expand, and nothing else', () => {
    expect(shellText(['python3', '-c', 'import sys; sys.exit(3)'])).toBe("python3 -c 'import sys; sys.exit(3)'");
    expect(shellText(['python3', 'job.py', '--out=/data/x,y', 'a@b:1%', ''])).toBe("python3 job.py --out=/data/x,y a@b:1% ''");
    expect(shellText(['echo', "it's", '$HOME', '*.py'])).toBe(`echo 'it'\\''s' '$HOME' '*.py'`);
    // A real shell reads the same words back.
    const words = ['printf', '%s\\0', "it's", '$HOME', '*', 'a b', '', '"q"', '\\', 'x\ny', '`id`'];
    const r = spawnSync('sh', ['-c', shellText(words)], { encoding: 'utf8' });
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(words.slice(2));
  });
});
