/**
 * A small mutation fuzzer (no dependency): seeded PRNG, byte and bit flips,
 * truncation, insertion, deletion, duplication, splicing with another seed,
 * and "interesting" values (huge and negative numbers, NULs, newlines)
 * written over digits and fields. Deterministic for a given seed number, so a
 * failure can be replayed from the input it saves.
 */

/** xorshift32: fast, deterministic, good enough to pick mutations. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.s = x >>> 0);
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)]!;
  }
}

const INTERESTING_TEXT = [
  '0',
  '-1',
  '1e309',
  '18446744073709551615',
  '9007199254740993',
  '4294967296',
  '-9223372036854775808',
  'NaN',
  'null',
  '[]',
  '{}',
  '""',
  '\u0000',
  '\n',
  '\r\n',
  '\uffff',
  '\ud800',
  '"',
  '\\',
  '[[0,1]]',
  ';',
  ' ',
  'max',
  '\t',
];
const INTERESTING_U32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 4096, 4095, 16, 8];

const INTERESTING_JSON: unknown[] = [
  0,
  -1,
  1.5,
  1e300,
  2 ** 64,
  2 ** 53 + 2,
  '',
  'x',
  '\u0000;\n',
  null,
  true,
  [],
  {},
  [[0, 1]],
  [0, 1],
  [[-1, 2 ** 40]],
  { type: 'end' },
  [[[[[]]]]],
];

/** Replaces one value somewhere inside a parsed JSON value (structure-aware: keeps the line valid JSON). */
function replaceLeaf(v: unknown, r: Rng): unknown {
  if (r.below(4) === 0 || v === null || typeof v !== 'object') return r.pick(INTERESTING_JSON);
  if (Array.isArray(v)) {
    if (v.length === 0) return [r.pick(INTERESTING_JSON)];
    const c = [...v];
    const i = r.below(c.length);
    c[i] = replaceLeaf(c[i], r);
    return c;
  }
  const o = { ...(v as Record<string, unknown>) };
  const keys = Object.keys(o);
  if (keys.length === 0) return o;
  const k = r.pick(keys);
  if (r.below(8) === 0) delete o[k];
  else o[k] = replaceLeaf(o[k], r);
  return o;
}

type Mutation = (b: Buffer, rng: Rng, seeds: readonly Buffer[]) => Buffer;

const mutations: Mutation[] = [
  // flip a bit
  (b, r) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    const i = r.below(c.length);
    c[i]! ^= 1 << r.below(8);
    return c;
  },
  // a random byte
  (b, r) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    c[r.below(c.length)] = r.below(256);
    return c;
  },
  // truncate
  (b, r) => b.subarray(0, r.below(b.length + 1)),
  // delete a range
  (b, r) => {
    const i = r.below(b.length + 1);
    const n = r.below(Math.min(64, b.length - i) + 1);
    return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
  },
  // duplicate a range (repetition: deep nesting, many lines)
  (b, r) => {
    const i = r.below(b.length + 1);
    const n = r.below(Math.min(256, b.length - i) + 1);
    const part = b.subarray(i, i + n);
    const times = 1 + r.below(r.below(4) === 0 ? 200 : 4);
    return Buffer.concat([b.subarray(0, i + n), ...Array.from({ length: times }, () => part), b.subarray(i + n)]);
  },
  // splice with another seed
  (b, r, seeds) => {
    const other = r.pick(seeds);
    return Buffer.concat([b.subarray(0, r.below(b.length + 1)), other.subarray(r.below(other.length + 1))]);
  },
  // an interesting text token over a run of digits (or anywhere)
  (b, r) => {
    const text = b.toString('latin1');
    const digits = [...text.matchAll(/\d+/g)];
    const tok = Buffer.from(r.pick(INTERESTING_TEXT), 'utf8');
    if (digits.length > 0 && r.below(4) !== 0) {
      const m = r.pick(digits);
      return Buffer.concat([b.subarray(0, m.index), tok, b.subarray(m.index! + m[0].length)]);
    }
    const i = r.below(b.length + 1);
    return Buffer.concat([b.subarray(0, i), tok, b.subarray(i)]);
  },
  // an interesting u32/u64 at an aligned offset (binary formats)
  (b, r) => {
    if (b.length < 8) return b;
    const c = Buffer.from(b);
    const off = r.below(Math.floor(c.length / 4)) * 4;
    if (r.below(2) === 0 && off + 8 <= c.length)
      c.writeBigUInt64LE(r.below(2) ? 0xffffffffffffffffn : BigInt(r.pick(INTERESTING_U32)) << BigInt(r.below(33)), off);
    else c.writeUInt32LE(r.pick(INTERESTING_U32), off);
    return c;
  },
];

/** For JSON Lines inputs: one value of one line replaced, the line still valid JSON. */
export const jsonLineMutation: Mutation = (b, r) => {
  const lines = b.toString('utf8').split('\n');
  const i = r.below(lines.length);
  try {
    lines[i] = JSON.stringify(replaceLeaf(JSON.parse(lines[i]!), r));
  } catch {
    return b; // not a JSON line (already mutated)
  }
  return Buffer.from(lines.join('\n'), 'utf8');
};

/** 1 to 4 stacked mutations of one seed. */
export function mutate(seed: Buffer, rng: Rng, seeds: readonly Buffer[], extra: readonly Mutation[] = []): Buffer {
  let b = seed;
  const n = 1 + rng.below(4);
  // Extra (format-aware) mutations are picked half the time.
  for (let i = 0; i < n; i++) b = (extra.length > 0 && rng.below(2) === 0 ? rng.pick(extra) : rng.pick(mutations))(b, rng, seeds);
  return b;
}
