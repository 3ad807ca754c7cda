/**
 * A generated Python program for the randomized line test: many functions
 * (some of them generators), calls from many lines, allocation sites through
 * ctypes (libc malloc), numpy and pure Python (bytearray over pymalloc's 512 B
 * limit), each site with a distinct size. Everything allocated stays alive to
 * the end, so the peak holds all of it. The program records, for every
 * object, the line `sys._getframe().f_lineno` reports at the site and the
 * bytes it asked for, and writes {line: bytes} to the file named by argv[1]:
 * the expected answer comes from the interpreter, not from the generator.
 */

/** mulberry32: small, seeded, good enough to shape programs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Runs gen.py (argv[1]) after making and dropping many short-lived functions
 * whose allocation sites have the same shape as gen.py's: their code objects
 * die and gen.py's, compiled afterwards, take their addresses — what start-up
 * code does to a real program. A line remembered for a dead code object must
 * never be served for a new one.
 */
export const churnRunner = `import ctypes, runpy, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def put(p, line, size):
    libc.free(p)
for k in range(300):
    ns = {'put': put, 'libc': libc, '_line': sys._getframe}
    exec(compile('def tmp():' + '\\n' * (k % 60 + 1) + '    put(libc.malloc(' + str(70000 + k) + '), _line().f_lineno, 0)\\n', 'churn.py', 'exec'), ns)
    ns['tmp']()
    del ns
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
`;

export interface LinesProgram {
  source: string;
  /** Line (1-based) -> name of the function whose body holds it ('<module>' at top level). */
  lineOwner: Map<number, string>;
  /** Lines of the module-level set-up (imports, warm-up, bookkeeping). */
  setupLines: Set<number>;
  /** A `def` line -> the function it defines. The line runs at module level,
   * and it is also the function's own line on entry, before its first line
   * runs: 3.8 - 3.10 read co_firstlineno while f_lasti is -1 (3.8 allocates
   * a code object's opcache there on its 1024th call: 256 KiB, a new pymalloc
   * arena, was charged to `put`'s def line in CI), 3.11+ from RESUME. */
  defLines: Map<number, string>;
  siteCount: number;
}

type Stmt =
  | { kind: 'ctypes' | 'numpy'; bytes: number }
  | { kind: 'bytes'; size: number; count: number }
  | { kind: 'call'; callee: number; times: number }
  | { kind: 'gen'; callee: number };

const KiB = 1024;

function statement(s: Stmt): string {
  switch (s.kind) {
    case 'ctypes':
      return `put(libc.malloc(${s.bytes}), _line().f_lineno, ${s.bytes})`;
    case 'numpy':
      return `put(np.ones(${s.bytes / 8}), _line().f_lineno, ${s.bytes})`;
    case 'bytes':
      return `for _ in range(${s.count}): put(bytearray(${s.size}), _line().f_lineno, ${s.size})`;
    case 'call':
      return s.times === 1 ? `f${s.callee}()` : `for _ in range(${s.times}): f${s.callee}()`;
    case 'gen':
      return `for _ in f${s.callee}(): pass`;
  }
}

export function generateLinesProgram(seed: number, withNumpy: boolean): LinesProgram {
  const rnd = prng(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const nFuncs = 14 + pick(10);
  const isGen = Array.from({ length: nFuncs }, (_, i) => i > 0 && rnd() < 0.2);
  const used = new Set<number>();
  // Distinct per site, and large enough (>= 192 KiB per execution) that a few
  // KiB of interpreter bookkeeping charged to a line stays far inside ±5 %.
  const distinct = (lo: number, hi: number, step: number) => {
    for (;;) {
      const v = lo + pick(Math.floor((hi - lo) / step)) * step;
      if (!used.has(v)) {
        used.add(v);
        return v;
      }
    }
  };
  const bodies: Stmt[][] = [];
  for (let f = 0; f < nFuncs; f++) {
    const body: Stmt[] = [];
    const n = 2 + pick(5);
    for (let s = 0; s < n; s++) {
      const r = rnd();
      const canCall = f < nFuncs - 1;
      if (canCall && r < 0.4) {
        const callee = f + 1 + pick(Math.min(4, nFuncs - f - 1));
        body.push(isGen[callee] ? { kind: 'gen', callee } : { kind: 'call', callee, times: 1 + pick(2) });
      } else if (r < 0.6) {
        body.push({ kind: 'ctypes', bytes: distinct(192 * KiB, 1024 * KiB, 4 * KiB + 8) });
      } else if (r < 0.75 && withNumpy) {
        const bytes = distinct(192 * KiB, 1024 * KiB, 8 * 131);
        body.push({ kind: 'numpy', bytes: bytes - (bytes % 8) });
      } else {
        const size = distinct(600, 4000, 7);
        body.push({ kind: 'bytes', size, count: Math.ceil((192 * KiB + pick(512 * KiB)) / size) });
      }
    }
    bodies.push(body);
  }
  // How many times each function runs from main (f0 and a few roots), to
  // keep the total memory bounded: callers run before callees (index order).
  const roots = [0, ...Array.from({ length: 3 }, () => pick(nFuncs)).filter((i) => !isGen[i])];
  const runs = new Array<number>(nFuncs).fill(0);
  // A generator body runs each statement twice per call (see below).
  const perRun = (f: number) => (isGen[f] ? 2 : 1);
  for (const r of roots) runs[r]! += 1;
  for (let f = 0; f < nFuncs; f++) {
    for (const s of bodies[f]!) {
      if (s.kind === 'call') runs[s.callee]! += runs[f]! * perRun(f) * s.times;
      if (s.kind === 'gen') runs[s.callee]! += runs[f]! * perRun(f);
    }
  }
  let objects = 0;
  let byteArrays = 0;
  let total = 0;
  for (let f = 0; f < nFuncs; f++) {
    for (const s of bodies[f]!) {
      const k = runs[f]! * perRun(f);
      if (s.kind === 'ctypes' || s.kind === 'numpy') {
        objects += k;
        total += k * s.bytes;
      } else if (s.kind === 'bytes') {
        objects += k * s.count;
        byteArrays += k * s.count;
        total += k * s.count * s.size;
      }
    }
  }
  // Bounded: shrink the roots when the call graph multiplies too much.
  if (total > 400 * 1024 * KiB || objects > 250_000) return generateLinesProgram(seed + 0x9e3779b9, withNumpy);
  // Sites in functions nothing calls never run: count only those that do, and
  // draw another program when too few would (the test needs at least 5).
  const reachableSites = bodies.flatMap((b, f) => (runs[f]! > 0 ? b : [])).filter((st) => st.kind !== 'call' && st.kind !== 'gen').length;
  if (reachableSites < 5) return generateLinesProgram(seed + 0x9e3779b9, withNumpy);

  const lines: string[] = [];
  const lineOwner = new Map<number, string>();
  const setupLines = new Set<number>();
  const emit = (text: string, owner: string, setup = false) => {
    lines.push(text);
    lineOwner.set(lines.length, owner);
    if (setup) setupLines.add(lines.length);
  };
  const defLines = new Map<number, string>();
  const setup = (text: string) => {
    emit(text, '<module>', true);
    const def = /^def (\w+)\(/.exec(text);
    if (def) defLines.set(lines.length, def[1]!);
  };
  setup('import ctypes, json, sys');
  setup('_line = sys._getframe');
  setup('libc = ctypes.CDLL(None)');
  setup('libc.malloc.restype = ctypes.c_void_p');
  setup('libc.malloc.argtypes = [ctypes.c_size_t]');
  setup(withNumpy ? 'import numpy as np' : 'np = None');
  setup(`KEEP = [None] * ${objects + 16}`);
  setup(`LINE = [0] * ${objects + 16}`);
  setup(`SIZE = [0] * ${objects + 16}`);
  setup('COUNT = [0]');
  setup('def put(obj, line, size):');
  // put's own lines belong to put: an int made there can take a new pymalloc
  // arena (1 MiB on 3.10+), rightly charged to put's line (seen at line 16
  // under --sample-rate 1 on 3.11).
  const putLine = (text: string) => emit(text, 'put', true);
  putLine('    i = COUNT[0]');
  putLine('    KEEP[i] = obj');
  putLine('    LINE[i] = line');
  // A bytearray's buffer is what malloc was asked for: size + 1 (its NUL)
  // up to 3.14; on 3.15 a whole bytes object (its 32-byte header too, +33 B,
  // 5 % of a 635-byte site). The interpreter says which (__alloc__).
  putLine('    SIZE[i] = obj.__alloc__() if type(obj) is bytearray else size');
  putLine('    COUNT[0] = i + 1');
  // Small objects made at the sites (bytearray and array headers, the ints
  // ctypes returns) come from pymalloc; warm it so that none of them needs a
  // new 256 KiB - 1 MiB arena, which would be charged to a site's line.
  // Twice as many bytearray headers as the sites make, half of them freed.
  setup(`_warm = [bytearray() for _ in range(${2 * (byteArrays + 20000)})] + [10**12 + i for i in range(40000)]`);
  setup('_warm += [np.empty(0) for _ in range(50000)] if np is not None else []');
  setup('del _warm[::2]');
  for (let f = 0; f < nFuncs; f++) {
    const name = `f${f}`;
    setup(`def ${name}():`); // runs at module level: makes the function object
    for (const s of bodies[f]!) {
      const stmt = statement(s);
      if (isGen[f]) {
        // A generator runs each statement twice, yielding after each.
        emit('    for _ in range(2):', name);
        emit(`        ${stmt}`, name);
        emit('        yield', name);
      } else {
        emit(`    ${stmt}`, name);
      }
    }
  }
  setup('def main():');
  for (const r of roots) emit(`    f${r}()`, 'main');
  setup('main()');
  setup('expected = {}');
  setup('for i in range(COUNT[0]): expected[LINE[i]] = expected.get(LINE[i], 0) + SIZE[i]');
  setup("with open(sys.argv[1], 'w') as out: json.dump(expected, out)");
  return { source: lines.join('\n') + '\n', lineOwner, setupLines, defLines, siteCount: reachableSites };
}
