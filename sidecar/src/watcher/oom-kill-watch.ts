/**
 * Did the kernel's OOM killer act in the watched processes' cgroups? Under
 * `highwater watch` nobody reaps the processes, so a worker SIGKILLed by the
 * kernel just vanishes; the cgroup's `oom_kill` count (v1 memory.oom_control,
 * v2 memory.events) moving while the tree ran says it was the OOM killer, and
 * the tree's post-mortem then says `killed`, not `exit`.
 *
 * Each local process's cgroup is located once, when the process is first
 * seen, and its count taken then as the baseline; every pass (and each time
 * a process vanishes, before its cgroup may go with it) reads the counts
 * again, with readOomKillCountSafely (no symlink, regular file, 4 KiB). A
 * process of another PID namespace has no cgroup we can see: it adds nothing.
 */
import { locateMemoryCgroup, type FsRoots } from '../memory/cgroup.js';
import { oomKillFile, readOomKillCountSafely } from '../memory/oom-kills.js';

export class OomKillWatch {
  /** pid → its cgroup's oom_kill file (null: none, or not readable). */
  private readonly files = new Map<number, string | null>();
  /** oom_kill file → count when first read, and now. */
  private readonly counts = new Map<string, { base: number; last: number }>();

  /**
   * `selfBefore`: the count of this watcher's own cgroup taken before the
   * program started (single-container mode: highwater-init reads it before it
   * starts the watcher and the command, HIGHWATER_OOM_KILLS_BEFORE). The
   * program's processes are in that cgroup, so it is their baseline: a kill
   * before the watcher first saw a process (a job that runs out within its
   * first second, while Node starts) still counts.
   */
  constructor(
    private readonly roots: FsRoots = {},
    selfBefore?: number,
  ) {
    if (selfBefore === undefined) return;
    try {
      const loc = locateMemoryCgroup('self', roots);
      const file = loc ? oomKillFile(loc) : null;
      const now = file ? readOomKillCountSafely(file) : undefined;
      if (file && now !== undefined && now >= selfBefore) this.counts.set(file, { base: selfBefore, last: now });
    } catch {
      // no cgroup of our own to read: each process's baseline is taken when it is seen
    }
  }

  /** A local process of the tree, seen now: its cgroup's count is watched from here on. */
  watch(pid: number): void {
    if (this.files.has(pid)) return;
    let file: string | null = null;
    try {
      const loc = locateMemoryCgroup(pid, this.roots);
      if (loc) file = oomKillFile(loc);
    } catch {
      // the process is gone, or its /proc files are unreadable: nothing to watch
    }
    this.files.set(pid, file);
    if (file && !this.counts.has(file)) {
      const n = readOomKillCountSafely(file);
      if (n !== undefined) this.counts.set(file, { base: n, last: n });
    }
  }

  /**
   * The start of the last poll that found no count moved: the kernel's kill
   * came after it. A process whose own end (its state file's endMs) is
   * earlier ended before the kill; the moment the watcher saw a killed
   * process gone is later than the kill by up to a pass, more on a loaded
   * machine, so it cannot tell that.
   */
  quietUntilMs: number | undefined;

  /** Read every watched count again (a cgroup that is gone keeps its last count). */
  poll(): void {
    const startedMs = Date.now();
    for (const [file, c] of this.counts) {
      const n = readOomKillCountSafely(file);
      if (n !== undefined && n > c.last) c.last = n;
    }
    if (!this.killed && this.counts.size > 0) this.quietUntilMs = startedMs;
  }

  /** The process ended: its pid is forgotten (a long recycling run stays bounded); its cgroup's count stays watched. */
  forget(pid: number): void {
    this.files.delete(pid);
  }

  /** The kernel's OOM killer ended a process in a watched cgroup since its baseline. */
  get killed(): boolean {
    for (const c of this.counts.values()) if (c.last > c.base) return true;
    return false;
  }

  /** A new run: forget the processes, and take today's counts as the new baselines. */
  reset(): void {
    this.files.clear();
    this.counts.clear();
    this.quietUntilMs = undefined;
  }
}
