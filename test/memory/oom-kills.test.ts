import { describe, expect, it } from 'vitest';
import { parseOomKillCount } from '../../sidecar/src/memory/oom-kills.js';

describe('parseOomKillCount', () => {
  it('reads oom_kill from cgroup v1 memory.oom_control', () => {
    expect(parseOomKillCount('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n')).toBe(3);
  });
  it('reads oom_kill from cgroup v2 memory.events', () => {
    expect(parseOomKillCount('low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n')).toBe(2);
  });
  it('is undefined when the line is missing (old kernels)', () => {
    expect(parseOomKillCount('oom_kill_disable 0\nunder_oom 0\n')).toBeUndefined();
  });
});
