// A tracked process's start-up (issues 11/12): the bootstrap reaches the shim
// through the shim's own module (native/shim/pymod.c), not ctypes. Facts the
// cut relies on, on every CPython 3.8 - 3.15 found: a tracked child imports
// nothing but the bootstrap's own modules (no ctypes, no _highwater in
// sys.modules), the shim is mapped from one file only (RTLD_NOLOAD: never a
// second copy), and the child still has its bytes at its line. Where
// LD_PRELOAD does not name the shim: under HIGHWATER_CHILDREN=0 the root
// finds it in its maps and its untracked children import nothing of ours
// but the bootstrap; a shim preloaded under another name falls back to
// ctypes and still tracks.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shimmedEnv } from '../shim/shimmed.js';
import { fixtures, pythons, repoRoot } from '../helpers/cli.js';
import { MiB, lineOf, near, readStates, run } from './native-files.js';

const script = join(fixtures, 'python', 'multiprocess', 'start_facts.py');
const allocLine = `start_facts.py:${lineOf(script, 'START_FACTS_ALLOC')}`;
// What the bootstrap adds to sys.modules ("sitecustomize" too, unless the
// interpreter has one of its own, as Debian's has).
const bootstrapModules = ['highwater', 'highwater._bootstrap', 'highwater._shim'];

interface Facts {
  role: string;
  pid: number;
  how: 'none' | 'own-module' | 'ctypes';
  shimFiles: string[];
  modules: string[];
}

function facts(stdout: string): Facts[] {
  return stdout
    .trim()
    .split('\n')
    .map((l) => {
      const [role, pid, via, files, ...modules] = l.split(' ');
      return { role: role!, pid: Number(pid), how: via as Facts['how'], shimFiles: files === '-' ? [] : files!.split(','), modules };
    });
}

/** The fixture's modules without highwater: what start-up loads by itself. */
function plainModules(exe: string): string[] {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.PYTHONPATH;
  const r = spawnSync(exe, [script, 'plain'], { env, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return facts(r.stdout)[0]!.modules;
}

// Debian's python3 has a sitecustomize of its own: the bootstrap chains to it.
const interpreters = [
  ...pythons().map((p) => [p.version, p.path]),
  ...(existsSync('/usr/bin/python3') ? [['/usr/bin/python3 (its own sitecustomize)', '/usr/bin/python3']] : []),
];

describe("a tracked child's start-up: no ctypes, nothing the program would not have loaded", () => {
  it('finds interpreters', () => {
    expect(pythons().length).toBeGreaterThan(0);
  });

  it.each(interpreters)('Python %s', async (_v, exe) => {
    const rd = mkdtempSync(join(tmpdir(), 'hw-childstart-'));
    const r = await run(exe, [script, 'parent'], shimmedEnv(rd), 60_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const got = facts(r.stdout);
    expect(got.map((f) => f.role)).toEqual(['child', 'parent']);
    for (const f of got) {
      expect(f.how, f.role).toBe('own-module');
      expect(f.shimFiles, `${f.role}: one copy of the shim`).toHaveLength(1);
      for (const m of ['ctypes', '_ctypes', '_highwater']) expect(f.modules, f.role).not.toContain(m);
    }
    // The child's start-up loads the bootstrap's modules and atexit, nothing
    // else the program would not have had (no threading, importlib.util).
    const plain = new Set(plainModules(exe));
    const child = got.find((f) => f.role === 'child')!;
    const added = child.modules.filter((m) => !plain.has(m));
    for (const m of bootstrapModules) expect(added).toContain(m);
    expect(added.filter((m) => !bootstrapModules.includes(m) && m !== 'atexit' && m !== 'sitecustomize')).toEqual([]);
    // The child still has its bytes at its line, in its own state file.
    const states = readStates(rd);
    for (const f of got) {
      const s = states.find((st) => st.pid === f.pid);
      expect(s, `state file of the ${f.role}`).toBeDefined();
      expect(s!.origin, f.role).toBe(f.role === 'parent' ? 1 : 2);
      expect(near(s!.peakByLine.get(allocLine), 12 * MiB), `${f.role}: ${s!.peakByLine.get(allocLine)} bytes`).toBe(true);
    }
  });
});

describe('where LD_PRELOAD does not name the shim', () => {
  it('HIGHWATER_CHILDREN=0: the root finds its shim in its maps (own module), its untracked child starts without ctypes', async () => {
    const rd = mkdtempSync(join(tmpdir(), 'hw-childstart-'));
    const r = await run('python3', [script, 'parent'], shimmedEnv(rd, { HIGHWATER_CHILDREN: '0' }), 60_000);
    expect(r.code, r.stderr).toBe(0);
    const [child, root] = facts(r.stdout);
    expect(root!.how).toBe('own-module');
    expect(root!.modules).not.toContain('ctypes');
    expect(child!.how).toBe('none');
    expect(child!.shimFiles).toEqual([]);
    expect(child!.modules).not.toContain('ctypes');
    const states = readStates(rd);
    expect(states.map((s) => s.pid)).toEqual([root!.pid]);
    expect(near(states[0]!.peakByLine.get(allocLine), 12 * MiB), `${states[0]!.peakByLine.get(allocLine)} bytes`).toBe(true);
  });

  it('a shim preloaded under another name: ctypes, and the bytes are still at their line', async () => {
    const rd = mkdtempSync(join(tmpdir(), 'hw-childstart-'));
    const link = join(mkdtempSync(join(tmpdir(), 'hw-childstart-link-')), 'libhw-renamed.so');
    symlinkSync(join(repoRoot, 'native', 'build', 'libhighwater.so'), link);
    const r = await run('python3', [script, 'root'], shimmedEnv(rd, { LD_PRELOAD: link }), 60_000);
    expect(r.code, r.stderr).toBe(0);
    const f = facts(r.stdout)[0]!;
    expect(f.how).toBe('ctypes');
    expect(f.modules).toContain('ctypes');
    const s = readStates(rd).find((st) => st.pid === f.pid);
    expect(near(s?.peakByLine.get(allocLine), 12 * MiB), `${s?.peakByLine.get(allocLine)} bytes`).toBe(true);
  });
});
