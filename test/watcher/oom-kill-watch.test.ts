/**
 * `highwater watch` learns that the kernel's OOM killer acted in the watched
 * processes' cgroup from its oom_kill count (cgroup v2 memory.events here, on
 * a fixture tree; the v1 memory.oom_control path runs for real in
 * test/multiprocess/watch-oom-kill.test.ts). The file is another party's: a
 * symlink, a FIFO or an oversized file is not read.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readOomKillCountSafely } from '../../sidecar/src/memory/oom-kills.js';
import { OomKillWatch } from '../../sidecar/src/watcher/oom-kill-watch.js';

const FX = join(import.meta.dirname, '../fixtures/cgroup/v2/host');
const SCOPE = 'sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope';
const events = (n: number) => `low 0\nhigh 0\nmax 7\noom 1\noom_kill ${n}\noom_group_kill 0\n`;

describe('OomKillWatch (cgroup v2 fixture)', () => {
  let tree = '';
  afterEach(() => rmSync(tree, { recursive: true, force: true }));

  function fixture(): { watch: OomKillWatch; file: string } {
    tree = mkdtempSync(join(tmpdir(), 'hw-oomkill-'));
    cpSync(FX, tree, { recursive: true });
    const file = join(tree, SCOPE, 'memory.events');
    writeFileSync(file, events(2)); // kills before we watched do not count
    return { watch: new OomKillWatch({ procRoot: join(tree, 'proc'), rootPrefix: tree }), file };
  }

  it('killed once the count moved after the process was first seen', () => {
    const { watch, file } = fixture();
    watch.watch(2718);
    watch.poll();
    expect(watch.killed).toBe(false);
    writeFileSync(file, events(3));
    watch.poll();
    expect(watch.killed).toBe(true);
    // A new run: the count now is its baseline.
    watch.reset();
    watch.watch(2718);
    expect(watch.killed).toBe(false);
  });

  it('the cgroup going away keeps what was seen', () => {
    const { watch, file } = fixture();
    watch.watch(2718);
    writeFileSync(file, events(4));
    watch.poll();
    rmSync(file);
    watch.poll();
    expect(watch.killed).toBe(true);
  });

  it('a symlink, a FIFO or an oversized file in its place is not read', () => {
    const { watch, file } = fixture();
    watch.watch(2718);
    const planted = join(tree, 'planted');
    writeFileSync(planted, events(9));
    rmSync(file);
    symlinkSync(planted, file);
    watch.poll();
    expect(watch.killed).toBe(false);
    expect(readOomKillCountSafely(file)).toBeUndefined();
    rmSync(file);
    execFileSync('mkfifo', [file]); // an open without O_NONBLOCK would hang here
    watch.poll();
    expect(readOomKillCountSafely(file)).toBeUndefined();
    rmSync(file);
    writeFileSync(file, 'x'.repeat(8192) + '\n' + events(9));
    watch.poll();
    expect(watch.killed).toBe(false);
    expect(readOomKillCountSafely(planted)).toBe(9); // the reader itself works
  });

  it("single-container mode: the count from before the program started is the baseline of the watcher's own cgroup", () => {
    const { file } = fixture(); // count 2 when highwater-init read it
    const roots = { procRoot: join(tree, 'proc'), rootPrefix: tree };
    cpSync(join(tree, 'proc/2718'), join(tree, 'proc/self'), { recursive: true }); // the watcher, in the same cgroup
    writeFileSync(file, events(3)); // a worker killed while the watcher was starting, before it saw any process
    const seeded = new OomKillWatch(roots, 2);
    seeded.watch(2718);
    seeded.poll();
    expect(seeded.killed).toBe(true);
    // Without it, that kill is part of the first seen process's baseline.
    const unseeded = new OomKillWatch(roots);
    unseeded.watch(2718);
    unseeded.poll();
    expect(unseeded.killed).toBe(false);
    // A value above today's count is not this cgroup's: ignored.
    const odd = new OomKillWatch(roots, 7);
    odd.watch(2718);
    odd.poll();
    expect(odd.killed).toBe(false);
  });

  it('a process whose cgroup cannot be found adds nothing', () => {
    const { watch } = fixture();
    watch.watch(999999);
    watch.poll();
    expect(watch.killed).toBe(false);
  });
});
