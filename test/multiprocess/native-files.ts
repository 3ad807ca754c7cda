/**
 * Reads what the shims of several processes leave in a run dir, straight
 * from the bytes docs/protocol.md documents (state header 2352-2479, the
 * `cpeak` area, `hw-container`): the native side's tests check the layout
 * itself, independently of the watcher's reader.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { basename, join } from 'node:path';

export const MiB = 1024 * 1024;

export interface ProcState {
  pid: number;
  argv: string[];
  currentBytes: number;
  peakBytes: number;
  origin: number;
  parentPid: number;
  trackedParentPid: number;
  inheritedBytes: number;
  forkSeq: number;
  containerSlot: bigint;
  containerStartEpoch: number;
  containerEnded: number;
  containerEndEpoch: number;
  cpeakEpoch: number;
  cpeakBytes: number;
  exitCode: number;
  /** Bytes per `file:line` (file basename) of the innermost frame. */
  peakByLine: Map<string, number>;
  liveByLine: Map<string, number>;
  cpeakByLine: Map<string, number>;
  /** The kill area (docs/protocol.md: killMs 2480, killBytes 2488, its offset 2496). */
  killMs: number;
  killBytes: number;
  killByLine: Map<string, number>;
}

const u64 = (b: Buffer, o: number) => Number(b.readBigUInt64LE(o));
const i64 = (b: Buffer, o: number) => Number(b.readBigInt64LE(o));

export function readProcState(path: string): ProcState {
  // The file is sparse and hundreds of MiB long: read only the used extents.
  const fd = openSync(path, 'r');
  try {
    const at = (off: number, len: number): Buffer => {
      const out = Buffer.alloc(len);
      if (len) readSync(fd, out, 0, len, off);
      return out;
    };
    const b = at(0, 4096);
    if (b.subarray(0, 8).toString('latin1') !== 'HWSTATE1') throw new Error(`${path}: not a state file`);
    const nodeCount = u64(b, 24);
    const funcCount = u64(b, 32);
    const offStrings = u64(b, 104);
    const funcRecs = at(u64(b, 88), 16 * funcCount);
    const nodeRecs = at(u64(b, 96), 16 * nodeCount);
    let strEnd = 0;
    for (let i = 0; i < funcCount; i++) strEnd = Math.max(strEnd, funcRecs.readUInt32LE(16 * i) + funcRecs.readUInt32LE(16 * i + 4));
    const strings = at(offStrings, strEnd);
    const funcs: string[] = [];
    for (let i = 0; i < funcCount; i++) {
      const fo = funcRecs.readUInt32LE(16 * i);
      const fl = funcRecs.readUInt32LE(16 * i + 4);
      funcs.push(basename(strings.subarray(fo, fo + fl).toString('utf8')));
    }
    const byLine = (off: number): Map<string, number> => {
      const m = new Map<string, number>();
      if (!off) return m;
      const area = at(off, 8 * nodeCount);
      for (let n = 1; n < nodeCount; n++) {
        const v = i64(area, 8 * n);
        if (!v) continue;
        const key = `${funcs[nodeRecs.readUInt32LE(16 * n + 4)] ?? '?'}:${nodeRecs.readUInt32LE(16 * n + 8)}`;
        m.set(key, (m.get(key) ?? 0) + v);
      }
      return m;
    };
    const live = byLine(u64(b, 112));
    return {
      pid: u64(b, 16),
      argv: b.subarray(288, 1312).toString('utf8').replace(/\0+$/, '').split('\0'),
      currentBytes: i64(b, 40),
      peakBytes: i64(b, 48),
      origin: u64(b, 2352),
      parentPid: u64(b, 2360),
      trackedParentPid: u64(b, 2368),
      inheritedBytes: u64(b, 2392),
      forkSeq: u64(b, 2400),
      containerSlot: b.readBigUInt64LE(2408),
      containerStartEpoch: u64(b, 2416),
      containerEnded: u64(b, 2424),
      containerEndEpoch: u64(b, 2432),
      cpeakEpoch: u64(b, 2440),
      cpeakBytes: i64(b, 2448),
      exitCode: u64(b, 2472),
      peakByLine: u64(b, 56) === 1 ? live : byLine(u64(b, 120)),
      liveByLine: live,
      cpeakByLine: byLine(u64(b, 2456)),
      killMs: u64(b, 2480),
      killBytes: i64(b, 2488),
      killByLine: byLine(u64(b, 2496)),
    };
  } finally {
    closeSync(fd);
  }
}

/** A state file whose magic was never written: the shim writes it last
 * (docs/protocol.md), so this is a process killed while it was creating its
 * file (e.g. a pool worker terminated at its start). Not a state to read. */
function neverInitialised(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(8);
    return readSync(fd, b, 0, 8, 0) < 8 || b.toString('latin1') !== 'HWSTATE1';
  } finally {
    closeSync(fd);
  }
}

export function readStates(runDir: string): ProcState[] {
  return readdirSync(runDir)
    .filter((f) => /^hw-\d+\.state$/.test(f) && !neverInitialised(join(runDir, f)))
    .map((f) => readProcState(join(runDir, f)));
}

export interface Container {
  quantumBytes: number;
  creatorPid: number;
  sumBytes: number;
  peakBytes: number;
  peakEpoch: number;
  slotsUsed: number;
  processesEver: number;
  oomPid: number;
  oomReason: number;
  oomDumpDone: number;
  stopperPid: number;
  slots: { pid: number; published: number; origin: number }[];
}

export function readContainer(runDir: string): Container | null {
  const path = join(runDir, 'hw-container');
  if (!existsSync(path)) return null;
  const b = readFileSync(path);
  if (b.subarray(0, 8).toString('latin1') !== 'HWCONT01') throw new Error('bad container magic');
  const slotsUsed = u64(b, 160);
  const slots = [];
  for (let i = 0; i < slotsUsed; i++) {
    const o = 4096 + 64 * i;
    slots.push({ pid: u64(b, o), published: i64(b, o + 16), origin: u64(b, o + 24) });
  }
  return {
    quantumBytes: u64(b, 40),
    creatorPid: u64(b, 48),
    sumBytes: i64(b, 64),
    peakBytes: i64(b, 128),
    peakEpoch: u64(b, 136),
    slotsUsed,
    processesEver: u64(b, 168),
    oomPid: u64(b, 192),
    oomReason: u64(b, 200),
    oomDumpDone: u64(b, 232),
    stopperPid: u64(b, 240),
    slots,
  };
}

/** The line of `marker` in a fixture (1-based). */
export function lineOf(file: string, marker: string): number {
  const i = readFileSync(file, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`${marker} not in ${file}`);
  return i + 1;
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000, cwd?: string): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    let done = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    };
    child.on('close', finish);
    // Orphans of a stopped container may hold the pipes a while: the exit decides.
    child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), 2000));
  });
}

/** Within ±5 % of `expected`. */
export function near(actual: number | undefined, expected: number): boolean {
  return actual !== undefined && Math.abs(actual - expected) <= expected * 0.05;
}
