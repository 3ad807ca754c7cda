/**
 * Test helper: small files that describe huge profiles (the inputs of
 * issue 8 item 7), generated here rather than checked in.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { buildStateFile } from './state-writer.js';

function header(peakBytes: number): string {
  return JSON.stringify({
    type: 'header',
    format: 'highwater-dump',
    version: 1,
    pid: 4242,
    trigger: 'exit',
    oomReason: null,
    timeMs: 1764035000000,
    python: '3.11.7',
    argv: ['python', 'hostile.py'],
    cwd: '/work',
    peakBytes,
  });
}

/** One stack of `depth` frames (distinct lines of one function), `bytes` at its innermost frame. */
export function deepDump(depth: number, bytes: number): string {
  const frames = Array.from({ length: depth }, (_, i) => [0, i + 1]);
  return (
    [
      header(bytes),
      JSON.stringify({ type: 'func', id: 0, file: '/work/hostile.py', name: 'recurse' }),
      JSON.stringify({ type: 'stack', snapshot: 'peak', bytes, frames }),
      JSON.stringify({ type: 'end', funcs: 1, stacks: 1, sources: 0 }),
    ].join('\n') + '\n'
  );
}

/**
 * `count` distinct stacks of 3 frames (<module>:1 → f:line → g:i), stack i
 * holding `1000 + i` bytes, written straight to `path` (it is ~60 MB for a
 * million: not built as one string). Returns the total bytes.
 */
export function writeManyStacksDump(path: string, count: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) total += 1000 + i;
  const fd = openSync(path, 'w');
  try {
    const lines = [
      header(total),
      '{"type":"func","id":0,"file":"/work/many.py","name":"<module>"}',
      '{"type":"func","id":1,"file":"/work/many.py","name":"f"}',
      '{"type":"func","id":2,"file":"/work/many.py","name":"g"}',
    ];
    writeSync(fd, lines.join('\n') + '\n');
    let chunk = '';
    for (let i = 0; i < count; i++) {
      chunk += `{"type":"stack","snapshot":"peak","bytes":${1000 + i},"frames":[[0,1],[1,${2 + (i % 1000)}],[2,${i + 1}]]}\n`;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    writeSync(fd, chunk + JSON.stringify({ type: 'end', funcs: 3, stacks: count, sources: 0 }) + '\n');
  } finally {
    closeSync(fd);
  }
  return total;
}

/** A state file describing a chain of `depth` distinct lines, `bytes` live at the deepest one. */
export function deepStateFile(depth: number, bytes: number, pid: number): Buffer {
  const snapshot = new Array<number>(depth + 1).fill(0);
  snapshot[depth] = bytes;
  return buildStateFile({
    pid,
    funcs: [{ file: '/work/chain.py', name: 'step' }],
    nodes: Array.from({ length: depth }, (_, i) => ({ parent: i, func: 0, line: i + 1 })),
    snapshot,
    live: snapshot,
    peakSource: 1,
    updatedMs: Date.now() - 60_000,
  });
}
