// A tracked process's start-up (issues 11/12): the bootstrap reaches the shim
// through the shim's own module (native/shim/pymod.c), not ctypes. Facts the
// cut relies on, on every CPython 3.8 - 3.14 found: a tracked child imports
// nothing but the bootstrap's own modules (no ctypes, no _highwater in
// sys.modules), the shim is mapped from one file only (RTLD_NOLOAD: never a
// second copy), and the child still has its bytes at its line. Where
// LD_PRELOAD no longer names the shim (HIGHWATER_CHILDREN=0) the root falls
// back to ctypes and still tracks.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shimmedEnv } from '../shim/shimmed.js';
import { fixtures, pythons } from '../helpers/cli.js';
import { MiB, lineOf, near, readStates, run } from './native-files.js';

const script = join(fixtures, 'python', 'multiprocess', 'start_facts.py');
const allocLine = `start_facts.py:${lineOf(script, 'START_FACTS_ALLOC')}`;
// What the bootstrap adds to sys.modules, and nothing else.
const bootstrapModules = ['highwater', 'highwater._bootstrap', 'highwater._shim', 'sitecustomize'];

interface Facts {
  role: string;
  pid: number;
  modules: string[];
  via_ctypes: boolean;
  shim_files: string[];
}

/** The modules the same interpreter has after `-c pass`-like start-up without highwater. */
function plainModules(exe: string): string[] {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.PYTHONPATH;
  const r = spawnSync(exe, ['-c', 'import json, sys; print(json.dumps(sorted(sys.modules)))'], { env, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  // The probe itself imported json (and what it needs); start_facts.py imports json, os, subprocess too.
  return JSON.parse(r.stdout) as string[];
}

describe('a tracked child starts without ctypes', () => {
  it('finds interpreters', () => {
    expect(pythons().length).toBeGreaterThan(0);
  });

  it.each(pythons().map((p) => [p.version, p.path]))('Python %s', async (_v, exe) => {
    const rd = mkdtempSync(join(tmpdir(), 'hw-childstart-'));
    const r = await run(exe, [script, 'parent'], shimmedEnv(rd), 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const facts = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Facts);
    expect(facts.map((f) => f.role)).toEqual(['child', 'parent']);
    const plain = new Set(plainModules(exe));
    for (const f of facts) {
      expect(f.via_ctypes, `${f.role} reached the shim through ctypes`).toBe(false);
      // The program's own imports (subprocess and what it pulls in) are its
      // own; of the rest, only the bootstrap's modules are new.
      const added = f.modules.filter((m) => !plain.has(m));
      for (const m of ['ctypes', '_ctypes', '_highwater']) expect(f.modules, f.role).not.toContain(m);
      for (const m of bootstrapModules) expect(added, f.role).toContain(m);
      expect(
        added.filter((m) => m.startsWith('highwater') || m === 'sitecustomize' || m.startsWith('_highwater')),
        f.role,
      ).toEqual(bootstrapModules);
      expect(f.shim_files, `${f.role}: one copy of the shim`).toHaveLength(1);
    }
    // The child still has its bytes at its line, in its own state file.
    const states = readStates(rd);
    for (const f of facts) {
      const s = states.find((st) => st.pid === f.pid);
      expect(s, `state file of the ${f.role}`).toBeDefined();
      expect(s!.origin, f.role).toBe(f.role === 'parent' ? 1 : 2);
      expect(near(s!.peakByLine.get(allocLine), 12 * MiB), `${f.role}: ${s!.peakByLine.get(allocLine)} bytes`).toBe(true);
    }
  });
});

describe('HIGHWATER_CHILDREN=0: LD_PRELOAD no longer names the shim', () => {
  it('the root falls back to ctypes and still has its bytes at its line', async () => {
    const rd = mkdtempSync(join(tmpdir(), 'hw-childstart-'));
    const r = await run('python3', [script, 'root'], shimmedEnv(rd, { HIGHWATER_CHILDREN: '0' }), 60_000);
    expect(r.code, r.stderr).toBe(0);
    const f = JSON.parse(r.stdout.trim()) as Facts;
    expect(f.via_ctypes).toBe(true);
    expect(f.modules).toContain('ctypes');
    const s = readStates(rd).find((st) => st.pid === f.pid);
    expect(near(s?.peakByLine.get(allocLine), 12 * MiB), `${s?.peakByLine.get(allocLine)} bytes`).toBe(true);
  });
});
