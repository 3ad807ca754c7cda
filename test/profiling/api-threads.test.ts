// Threads started inside highwater.api.profile(), on every CPython found:
// the Python-level hook that registers a new thread (threading.setprofile)
// must not stay the thread's profile function where the shim needs none
// (3.9+: frame-evaluation hook or frame walk), since it runs Python code on
// every call and return (6 - 8x on a call-heavy thread); the thread's
// allocation is charged to its line.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { MiB, bytesAtLine, expectNear, fixtures, freshDir, lineOf, pythons, readReport, runCli } from '../helpers/cli.js';

const script = join(fixtures, 'api', 'thread_profile.py');
const before = join(fixtures, 'api', 'thread_before.py');

describe('a thread started inside highwater.api.profile()', () => {
  it.each(pythons().map((p) => [p.version, p.path]))('Python %s', async (_v, exe) => {
    const out = join(freshDir(), 'result');
    const r = await runCli(['python', '-o', freshDir('hw-cli-out-'), '--no-browser', '--', exe, script, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('threads 1');
    expect(r.stdout).toContain('thread profile function: None');
    expectNear(bytesAtLine(readReport(out), 'thread_profile.py', lineOf(script, 'thread line')), 20 * MiB);
  });
});

// Its frames started before tracking did (before 3.11: before the
// frame-evaluation hook was installed), so they end without being seen; the
// shadow stack is rebuilt from the thread's frame chain and checked against
// it (docs/stacks.md). Under the profile callback such a thread had no stack.
describe('a thread started before highwater.api.profile()', () => {
  it.each(pythons().map((p) => [p.version, p.path]))('Python %s', async (_v, exe) => {
    const out = join(freshDir(), 'result');
    const r = await runCli(['python', '-o', freshDir('hw-cli-out-'), '--no-browser', '--', exe, before, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('blocks 4');
    const rep = readReport(out);
    // Bytes whose stack passes through loop() at a line (A and B allocate in alloc()).
    const viaLoop = (line: number) =>
      rep.stacks.filter((st) => st.frames.some((f) => f.function === 'loop' && f.line === line)).reduce((sum, st) => sum + st.bytes, 0);
    expectNear(viaLoop(lineOf(before, 'loop line A')), 3 * MiB);
    expectNear(viaLoop(lineOf(before, 'loop line B')), 10 * MiB);
    expectNear(viaLoop(lineOf(before, 'loop line C')), 7 * MiB);
    expectNear(bytesAtLine(rep, 'thread_before.py', lineOf(before, 'def alloc') + 1), 13 * MiB);
  });
});
