import { describe, expect, it } from 'vitest';
import { postMortemTrigger, type EndStatus } from '../../sidecar/src/watcher/post-mortem.js';

const tracked = { exitStatus: 0, tracking: true, peakBytes: 5 };
const off = { exitStatus: 0, tracking: false, peakBytes: 5 };
const never = { exitStatus: 0, tracking: false, peakBytes: 0 };
const shimOom = { exitStatus: 0x100 + 53, tracking: false, peakBytes: 5 };
const exit0: EndStatus = { code: 0, signal: null };
const sigkill: EndStatus = { code: null, signal: 'SIGKILL' };
const sigsegv: EndStatus = { code: null, signal: 'SIGSEGV' };
const reaped: EndStatus = { code: null, signal: 'SIGSEGV', oomKilled: true };

describe('postMortemTrigger (docs/protocol.md "Post-mortem reports")', () => {
  it.each([
    ['the shim exited 53, end unknown', shimOom, undefined, 'oom'],
    ['the shim exited 53, status 53', shimOom, { code: 53, signal: null }, 'oom'],
    ['vanished while tracking', tracked, undefined, 'killed'],
    ['vanished, tracking off, something tracked before (the API)', off, undefined, 'killed'],
    ['vanished, never tracked', never, undefined, undefined],
    ['SIGKILL', tracked, sigkill, 'killed'],
    ['another signal', tracked, sigsegv, 'signal'],
    ['a signal while the cgroup OOM-killed it', tracked, reaped, 'killed'],
    ['an exit code while tracking (os._exit)', tracked, exit0, 'exit'],
    ['an exit code with tracking off (python mode)', off, exit0, undefined],
    ['SIGKILL with tracking off but a peak', off, sigkill, 'killed'],
    ['SIGKILL, never tracked', never, sigkill, undefined],
  ] as const)('%s', (_name, facts, ended, want) => {
    expect(postMortemTrigger(facts, ended)).toBe(want);
  });
});
