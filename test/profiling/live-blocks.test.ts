// The live-block table (native/shim/blocks.h) end to end: hundreds of
// thousands of blocks through several growths, deletions in the middle of
// probe runs, and blocks too big for its compact slots (>= 256 MiB), all
// checked as bytes at the lines that allocated them.
import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, bytesAtLine, expectNear, freshDir, onlyReport, runProfiled } from '../helpers/cli.js';

const script = `import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
stats = ctypes.PyDLL(None)
stats.hw_stat.restype = ctypes.c_longlong
stats.hw_stat.argtypes = [ctypes.c_char_p]
big = libc.malloc(300 * 1024 * 1024)
small = (ctypes.c_void_p * 300000)()
for i in range(300000): small[i] = libc.malloc(100 + i % 50)
print("full", stats.hw_stat(b"live_allocations"), stats.hw_stat(b"overhead_bytes"))
for i in range(0, 300000, 2): libc.free(small[i])
other = libc.malloc(310 * 1024 * 1024)
libc.free(other)
last = libc.malloc(400 * 1024 * 1024)
print("live", stats.hw_stat(b"live_allocations"), "overhead", stats.hw_stat(b"overhead_bytes"))
`;

describe('live blocks', () => {
  it('keeps sizes and lines through growth, deletions and blocks of 256 MiB or more', async () => {
    const dir = freshDir();
    const file = join(dir, 'blocks.py');
    writeFileSync(file, script);
    const r = await runProfiled(['--', 'python3', file]);
    expect(r.code, r.stderr).toBe(0);
    const rep = onlyReport(r.outDir);
    expectNear(bytesAtLine(rep, 'blocks.py', 9), 300 * MiB);
    // A new peak at line 16, after line 14's block was freed: all of it.
    expect(bytesAtLine(rep, 'blocks.py', 14)).toBe(0);
    expectNear(bytesAtLine(rep, 'blocks.py', 16), 400 * MiB);
    // Half of the 300 000 small blocks are freed before the peak.
    let small = 0;
    for (let i = 1; i < 300000; i += 2) small += 100 + (i % 50);
    expectNear(bytesAtLine(rep, 'blocks.py', 11), small);
    // The table's bookkeeping per live block: 12-byte slots, 58 - 75 % full
    // while growing; after half is freed, at most 32 B (it shrinks below 37.5 %).
    const full = /full (\d+) (\d+)/.exec(r.stdout);
    const after = /live (\d+) overhead (\d+)/.exec(r.stdout);
    expect(full && after, r.stdout).toBeTruthy();
    expect(Number(full![1])).toBeGreaterThanOrEqual(300000);
    expect(Number(full![2]) / Number(full![1])).toBeLessThanOrEqual(24);
    expect(Number(after![1])).toBeGreaterThanOrEqual(150000);
    expect(Number(after![2]) / Number(after![1])).toBeLessThanOrEqual(32);
  });
});
