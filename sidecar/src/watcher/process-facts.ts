/**
 * What a state file says about its process's place among the others
 * (docs/protocol.md "State file", offsets 2352-2479, written by shims that
 * track children): how it started, its tracked parent, its fork number, and
 * its part of the container peak. Pure parse of the 4096-byte header
 * (offsets from state/layout.ts); a header of an older shim reads as
 * `unknown` with no container part.
 */
import { HEADER } from '../state/layout.js';

export type Origin = 'unknown' | 'root' | 'exec' | 'fork';
const ORIGINS: readonly Origin[] = ['unknown', 'root', 'exec', 'fork'];

export interface ProcessFacts {
  origin: Origin;
  parentPid: number;
  /** The nearest tracked ancestor (0 for a root). */
  trackedParentPid: number;
  startMs: number;
  startTicks: number;
  /** Forked child: the parent's bytes at the fork (not charged to it). */
  inheritedBytes: number;
  /** Forked child: 1 for its parent's first fork, 2 for the next, … (0 otherwise). */
  forkSeq: number;
  /** In the container sum (false: children off, no room, an older shim). */
  inContainer: boolean;
  containerStartEpoch: number;
  containerEnded: boolean;
  containerEndEpoch: number;
  /** The epoch whose bytes per node the cpeak area holds, and its total. */
  cpeakEpoch: number;
  cpeakBytes: number;
  cpeakOffset: number;
  endMs: number;
  /** 0x100 + code when it ended through _exit or the OOM exit; else 0. */
  exitCode: number;
  /**
   * Wall-clock ms when it saw its cgroup's oom_kill count move (0: it saw no
   * kill, or an older shim): its `kill` area then holds its bytes per node at
   * that moment, `killBytes` their total.
   */
  killMs: number;
  killBytes: number;
}

const NO_SLOT = 0xffffffffffffffffn;

export function parseProcessFacts(header: Buffer): ProcessFacts {
  if (header.length < HEADER.exitCode + 8) {
    return {
      origin: 'unknown',
      parentPid: 0,
      trackedParentPid: 0,
      startMs: 0,
      startTicks: 0,
      inheritedBytes: 0,
      forkSeq: 0,
      inContainer: false,
      containerStartEpoch: 0,
      containerEnded: false,
      containerEndEpoch: 0,
      cpeakEpoch: 0,
      cpeakBytes: 0,
      cpeakOffset: 0,
      endMs: 0,
      exitCode: 0,
      killMs: 0,
      killBytes: 0,
    };
  }
  const u = (off: number) => Number(header.readBigUInt64LE(off));
  return {
    origin: ORIGINS[u(HEADER.origin)] ?? 'unknown',
    parentPid: u(HEADER.parentPid),
    trackedParentPid: u(HEADER.trackedParentPid),
    startMs: u(HEADER.startMs),
    startTicks: u(HEADER.startTicks),
    inheritedBytes: u(HEADER.inheritedBytes),
    forkSeq: u(HEADER.forkSeq),
    inContainer: header.readBigUInt64LE(HEADER.containerSlot) !== NO_SLOT,
    containerStartEpoch: u(HEADER.containerStartEpoch),
    containerEnded: u(HEADER.containerEnded) === 1,
    containerEndEpoch: u(HEADER.containerEndEpoch),
    cpeakEpoch: u(HEADER.cpeakEpoch),
    cpeakBytes: Number(header.readBigInt64LE(HEADER.cpeakBytes)),
    cpeakOffset: u(HEADER.cpeakOffset),
    endMs: u(HEADER.endMs),
    exitCode: u(HEADER.exitCode),
    killMs: u(HEADER.killMs),
    killBytes: Number(header.readBigInt64LE(HEADER.killBytes)),
  };
}

/** Does the process hold a part of the container peak of epoch `e`? (docs/protocol.md "Reading the container peak") */
export function contributesAt(f: ProcessFacts, e: number): boolean {
  return f.inContainer && f.containerStartEpoch < e && (!f.containerEnded || f.containerEndEpoch >= e);
}

/** Which area holds its bytes per node at epoch `e`: the cpeak copy, or live (unchanged since). */
export function areaAt(f: ProcessFacts, e: number): 'cpeak' | 'live' {
  return f.cpeakEpoch === e && f.cpeakOffset > 0 ? 'cpeak' : 'live';
}
