// OOM detection against real memory cgroups: the job must stop itself with
// exit 53 and a report naming the lines, before the kernel's OOM killer.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { MiB, bytesAtLine, cliPath, fixtures, freshDir, lineOf, onlyReport, pythonWithNumpy, repoRoot } from '../helpers/cli.js';
import { type TestCgroup, cgroupUnavailable, makeCgroup } from '../helpers/cgroup.js';

const py = (name: string) => join(fixtures, 'python', name);
const at = (name: string, marker: string) => lineOf(py(name), marker);
const unavailable = cgroupUnavailable();

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  outDir: string;
}

/** Runs `highwater run` with the CLI itself inside a fresh memory cgroup. */
function runInCgroup(cg: TestCgroup, args: string[], flags: string[] = []): Promise<Outcome> {
  const outDir = freshDir('hw-oom-');
  const quoted = [process.execPath, cliPath, 'run', '-o', outDir, '--no-browser', ...flags, '--', pythonWithNumpy(), ...args]
    .map((a) => `'${a.replace(/'/g, `'\\''`)}'`)
    .join(' ');
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', `${cg.enterPrefix} ${quoted}`], {
      cwd: repoRoot,
      env: { ...process.env, DISPLAY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr, outDir }));
  });
}

describe.skipIf(unavailable !== null)(`OOM detection in a real memory cgroup${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  let cg: TestCgroup | undefined;
  const limit = (bytes: number) => {
    const made = makeCgroup(bytes);
    if (typeof made === 'string') throw new Error(made);
    cg = made;
    return made;
  };
  afterEach(() => cg?.remove());

  it('a gradual leak exits 53 with the growing line holding most of the limit', async () => {
    const r = await runInCgroup(limit(450 * MiB), [py('leak.py')]);
    expect(r.code, r.stderr).toBe(53);
    expect(r.stdout).not.toContain('survived');
    const rep = onlyReport(r.outDir);
    expect(rep.trigger).toBe('oom');
    expect(rep.oomReason).toBe('low-available');
    const leaked = bytesAtLine(rep, 'leak.py', at('leak.py', 'leak line'));
    // The node process of the CLI shares the cgroup; the leak still holds
    // well over half of what is left above the floor.
    expect(leaked).toBeGreaterThan(200 * MiB);
    // Whole 10 MiB steps, counted exactly (plus the few small objects numpy makes per step).
    expect(leaked - Math.round(leaked / (10 * MiB)) * 10 * MiB).toBeLessThan(64 * 1024);
    expect(rep.oomAllocation?.bytes).toBe(10 * MiB);
    const own = rep.oomAllocation!.frames.filter((f) => f.file.endsWith('leak.py')).map((f) => f.line);
    expect(own).toEqual([at('leak.py', 'held.append(leak_step())'), at('leak.py', 'leak line')]);
    expect(rep.memory.limitBytes).toBe(450 * MiB);
  });

  it('one enormous allocation exits 53 and names the line', async () => {
    const r = await runInCgroup(limit(450 * MiB), [py('huge.py')]);
    expect(r.code, r.stderr).toBe(53);
    const rep = onlyReport(r.outDir);
    expect(rep.oomAllocation?.bytes).toBe(8 * 1024 ** 4);
    expect(rep.oomAllocation?.frames.at(-2)).toMatchObject({ function: 'enormous', line: at('huge.py', 'enormous line') });
  });

  it('two threads leaking at once exit 53 with both lines present', async () => {
    const r = await runInCgroup(limit(450 * MiB), [py('two_leaks.py')]);
    expect(r.code, r.stderr).toBe(53);
    const rep = onlyReport(r.outDir);
    const a = bytesAtLine(rep, 'two_leaks.py', at('two_leaks.py', 'leak A line'));
    const b = bytesAtLine(rep, 'two_leaks.py', at('two_leaks.py', 'leak B line'));
    expect(a).toBeGreaterThan(40 * MiB);
    expect(b).toBeGreaterThan(40 * MiB);
  });

  it('streaming 1.5 GiB through the page cache in a 450 MiB limit raises no alarm', async () => {
    const r = await runInCgroup(limit(450 * MiB), [py('page_cache.py'), join(freshDir(), 'stream.bin')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`streamed ${1536 * MiB}`);
    expect(onlyReport(r.outDir).trigger).toBe('exit');
  });

  it('ballast appears with its exact size', async () => {
    const r = await runInCgroup(limit(450 * MiB), [py('ballast.py')]);
    expect(r.code, r.stderr).toBe(53);
    const rep = onlyReport(r.outDir);
    expect(bytesAtLine(rep, 'ballast.py', at('ballast.py', 'ballast line'))).toBe(100 * MiB);
  });

  it('with detection disabled the kernel kills it: 137 and a post-mortem report', async () => {
    const r = await runInCgroup(limit(450 * MiB), [py('leak.py')], ['--disable-oom-detection']);
    expect(r.code, r.stderr).toBe(137);
    const rep = onlyReport(r.outDir);
    expect(rep.trigger).toBe('killed');
    expect(bytesAtLine(rep, 'leak.py', at('leak.py', 'leak line'))).toBeGreaterThan(250 * MiB);
  });
});
