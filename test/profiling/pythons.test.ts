// One shim for every CPython 3.8 - 3.15: the libc-malloc case on each.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, bytesAtLine, expectNear, freshDir, onlyReport, pythons, runProfiled } from '../helpers/cli.js';

const script = `import ctypes, threading
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
def alloc_it():
    return libc.malloc(50 * 1024 * 1024)
def in_thread(out):
    out.append(libc.malloc(30 * 1024 * 1024))
x = alloc_it()
out = []
t = threading.Thread(target=in_thread, args=(out,))
t.start(); t.join()
big = bytearray(20 * 1024 * 1024)
`;

const found = pythons();

describe('every CPython 3.8 - 3.15 with the same libhighwater.so', () => {
  it('finds several interpreters on this machine', () => {
    // pyenv on the development and CI machines carries all six.
    expect(found.length).toBeGreaterThanOrEqual(1);
  });

  it.each(found.map((p) => [p.version, p.path]))('Python %s', async (_v, exe) => {
    const dir = freshDir();
    const file = join(dir, 'alloc.py');
    writeFileSync(file, script);
    const r = await runProfiled(['--', exe, file]);
    expect(r.code, r.stderr).toBe(0);
    const rep = onlyReport(r.outDir);
    expect(rep.process.python).toBe(_v.replace(/^(\d+\.\d+\.\d+).*/, '$1'));
    expectNear(bytesAtLine(rep, 'alloc.py', 6), 50 * MiB);
    expectNear(bytesAtLine(rep, 'alloc.py', 8), 30 * MiB);
    expectNear(bytesAtLine(rep, 'alloc.py', 13), 20 * MiB);
    const threadStack = rep.stacks.find((s) => s.frames.some((f) => f.function === 'in_thread'))!;
    expect(threadStack.frames.some((f) => f.function === '<module>')).toBe(false);
  });
});
