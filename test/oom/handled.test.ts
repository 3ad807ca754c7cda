// A MemoryError is the program's to handle. An allocation the real allocator
// (or the kernel, under RLIMIT_AS) refuses fails exactly as without
// highwater; the shim records it, and only an unhandled one ends in 53 with
// a report naming the line. No cgroup needed: these are plain refusals.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fixtures, freshDir, lineOf, onlyReport, pythonWithNumpy, reportDirs, runProfiled } from '../helpers/cli.js';
import { shimmedPython } from '../shim/shimmed.js';

const py = (name: string) => join(fixtures, 'python', name);
const MiB = 1024 * 1024;

function plain(args: string[]) {
  return spawnSync(pythonWithNumpy(), args, { encoding: 'utf8', cwd: freshDir() });
}

/** The failedAllocation line of a raw dump, its frames as [file, line]. */
function failedAllocation(dumpText: string) {
  const lines = dumpText
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const funcs = new Map<number, string>();
  for (const l of lines) if (l.type === 'func') funcs.set(l.id as number, l.file as string);
  const f = lines.find((l) => l.type === 'failedAllocation');
  if (!f) return undefined;
  return {
    count: f.count as number,
    bytes: f.bytes as number,
    frames: (f.frames as [number, number][]).map(([id, line]) => [funcs.get(id), line] as const),
  };
}

describe('handled and unhandled MemoryError', () => {
  it('np.empty(2**40) caught: exit 0, the same stdout as plain Python, an exit report', async () => {
    const script = py('memerror_caught.py');
    const base = plain([script]);
    expect(base.status).toBe(0);
    const r = await runProfiled(['--', pythonWithNumpy(), script]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(base.stdout);
    expect(r.stderr).not.toContain('out of memory');
    const rep = onlyReport(r.outDir);
    expect(rep.trigger).toBe('exit');
    expect(rep.oomReason).toBeNull();
    // The near miss is in the report: how many, how big, where.
    expect(rep.failedAllocation?.count).toBe(1);
    expect(rep.failedAllocation?.bytes).toBe(8 * 1024 ** 4);
    const own = rep.failedAllocation!.frames.filter((f) => f.file === script).map((f) => f.line);
    expect(own).toEqual([lineOf(script, 'refused line')]);
    const html = readFileSync(join(reportDirs(r.outDir)[0]!, 'index.html'), 'utf8');
    expect(html).toContain('1 allocation was refused');
  });

  it('the refused allocation is recorded in the dump at its line, with its size', async () => {
    const runDir = freshDir('hw-run-');
    const script = py('memerror_caught.py');
    const p = shimmedPython(runDir, [script], {}, pythonWithNumpy());
    expect(await p.exit).toBe(0);
    const dumps = readdirSync(runDir).filter((f) => f.endsWith('.dump'));
    expect(dumps).toHaveLength(1);
    const failed = failedAllocation(readFileSync(join(runDir, dumps[0]!), 'utf8'));
    expect(failed?.count).toBe(1);
    expect(failed?.bytes).toBe(8 * 1024 ** 4);
    expect(failed?.frames.filter(([f]) => f === script).map(([, l]) => l)).toEqual([lineOf(script, 'refused line')]);
  });

  for (const flags of [[], ['--disable-oom-detection']]) {
    it(`RLIMIT_AS and a caught 600 MiB bytearray: exit 0 and plain Python's stdout ${flags.join(' ')}`, async () => {
      const script = py('rlimit_bytearray.py');
      const base = plain([script, 'caught']);
      expect(base.stdout).toBe('before\ncaught\nafter 10485760\n');
      const r = await runProfiled(['--', pythonWithNumpy(), script, 'caught'], { flags });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(base.stdout);
      const rep = onlyReport(r.outDir);
      expect(rep.trigger).toBe('exit');
      expect(rep.failedAllocation?.count).toBe(1);
    });
  }

  for (const flags of [[], ['--disable-oom-detection']]) {
    it(`unhandled: exit 53, the traceback, and an OOM report naming the line ${flags.join(' ')}`, async () => {
      const script = py('rlimit_bytearray.py');
      expect(plain([script, 'unhandled']).status).toBe(1);
      const r = await runProfiled(['--', pythonWithNumpy(), script, 'unhandled'], { flags });
      expect(r.code, r.stderr).toBe(53);
      expect(r.stdout).toBe('before\n');
      expect(r.stderr).toMatch(/Traceback[\s\S]*MemoryError/);
      const rep = onlyReport(r.outDir);
      expect(rep.trigger).toBe('oom');
      expect(rep.oomReason).toBe('failed-allocation');
      expect(rep.oomAllocation?.bytes).toBeGreaterThanOrEqual(600 * MiB);
      expect(rep.oomAllocation?.bytes).toBeLessThan(601 * MiB);
      const own = rep.oomAllocation!.frames.filter((f) => f.file === script).map((f) => f.line);
      expect(own).toEqual([lineOf(script, 'held = grab()'), lineOf(script, 'grab line')]);
    });
  }

  it("unhandled under the program's own excepthook: its hook runs, and exit 53", async () => {
    const script = py('rlimit_bytearray.py');
    const r = await runProfiled(['--', pythonWithNumpy(), script, 'own-hook']);
    expect(r.code, r.stderr).toBe(53);
    expect(r.stderr).toContain('own hook saw MemoryError');
    expect(r.stderr).not.toContain('Traceback');
    expect(onlyReport(r.outDir).oomReason).toBe('failed-allocation');
  });

  it("a hook installed only over the interpreter's own (the exceptiongroup backport's rule): installed as without highwater, and exit 53", async () => {
    const script = py('rlimit_bytearray.py');
    const base = plain([script, 'polite-hook']);
    expect(base.stderr).toContain('polite hook saw MemoryError');
    const r = await runProfiled(['--', pythonWithNumpy(), script, 'polite-hook']);
    expect(r.code, r.stderr).toBe(53);
    expect(r.stderr).toContain('polite hook saw MemoryError');
    expect(r.stderr).not.toContain('not installed');
    expect(onlyReport(r.outDir).oomReason).toBe('failed-allocation');
  });

  it('python -i: a MemoryError that ended the script does not end the session, which goes on and exits 0', async () => {
    // The prompt prints the traceback through sys.excepthook and sets
    // sys.last_value, as an unhandled error at the end of a script does; the
    // session then read the next statement and ended 0, and highwater made
    // it 53 with an OOM report.
    const script = py('rlimit_bytearray.py');
    const input = 'print("alive", "held" in dir())\n';
    const base = spawnSync(pythonWithNumpy(), ['-i', script, 'unhandled'], { encoding: 'utf8', cwd: freshDir(), input });
    expect(base.status, base.stderr).toBe(0);
    expect(base.stdout).toBe('before\nalive False\n');
    expect(base.stderr).toMatch(/Traceback[\s\S]*MemoryError/);
    const r = await runProfiled(['--', pythonWithNumpy(), '-i', script, 'unhandled'], { stdin: input });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(base.stdout);
    expect(r.stderr).not.toContain('out of memory');
    const rep = onlyReport(r.outDir);
    expect(rep.trigger).toBe('exit');
    expect(rep.oomReason).toBeNull();
    expect(rep.failedAllocation?.count).toBe(1);
  });

  it('handled, then passed to sys.excepthook by the program itself: still exit 0', async () => {
    const script = py('rlimit_bytearray.py');
    const base = plain([script, 'manual-hook']);
    expect(base.status).toBe(0);
    const r = await runProfiled(['--', pythonWithNumpy(), script, 'manual-hook']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(base.stdout);
    expect(onlyReport(r.outDir).trigger).toBe('exit');
  });
});
