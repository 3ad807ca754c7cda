/**
 * Memory over time (docs/protocol.md "Timeline"): read from a dump's
 * `timeline` line or from the state file's timeline region. Both inputs are
 * untrusted: counts are bounded, every number is checked.
 */
import { HighwaterError } from '../errors.js';
import type { Timeline, TimelineSample } from './model.js';
import { STATE_HEADER_SIZE, TIMELINE, TIMELINE_HEADER, TIMELINE_MAX_SAMPLES, TIMELINE_SAMPLE, TIMELINE_SAMPLE_FIELDS } from '../state/layout.js';

/** A sample's fields, in the state file's order and the dump line's. */
const FIELDS = TIMELINE_SAMPLE_FIELDS;

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * A dump's `{"type":"timeline",...}` line. Malformed → HW_ERR_DUMP_INVALID
 * (the rest of the dump is fine, but a half-believed series would mislead).
 */
export function timelineFromDumpLine(o: Record<string, unknown>, lineNo: number): Timeline {
  const bad = (what: string) => new HighwaterError('HW_ERR_DUMP_INVALID', `raw dump line ${lineNo}: timeline ${what}`);
  for (const k of ['intervalMs', 'peakMs', 'peakBytes'] as const) if (!isCount(o[k])) throw bad(`"${k}" must be a non-negative integer`);
  const raw = o.samples;
  if (!Array.isArray(raw) || raw.length > TIMELINE_MAX_SAMPLES) throw bad(`"samples" must be an array of at most ${TIMELINE_MAX_SAMPLES}`);
  const samples: TimelineSample[] = raw.map((s) => {
    if (!Array.isArray(s) || s.length !== FIELDS.length || !s.every(isCount)) throw bad('samples must be [timeMs, tracked, workingSet, limit, floor]');
    return s as unknown as TimelineSample;
  });
  return sortedTimeline(o.intervalMs as number, o.peakMs as number, o.peakBytes as number, samples);
}

/**
 * The timeline region of a state file at `off` (header slot 2344; 0 = none).
 * A region that does not fit or says nonsense is dropped (undefined), not an
 * error: the stacks of a post-mortem report matter more than its plot.
 */
export function timelineFromState(buf: Buffer, off: number): Timeline | undefined {
  if (off === 0 || off < STATE_HEADER_SIZE || off + TIMELINE_HEADER > buf.length) return undefined;
  const u = (at: number) => {
    const v = buf.readBigInt64LE(at);
    return v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
  };
  const capacity = u(off + TIMELINE.capacity);
  const count = u(off + TIMELINE.count);
  if (capacity < 0 || capacity > TIMELINE_MAX_SAMPLES || count < 0 || count > capacity) return undefined;
  if (off + TIMELINE_HEADER + count * TIMELINE_SAMPLE > buf.length) return undefined;
  const samples: TimelineSample[] = [];
  for (let i = 0; i < count; i++) {
    const at = off + TIMELINE_HEADER + i * TIMELINE_SAMPLE;
    const s = FIELDS.map((_, k) => u(at + k * 8)) as unknown as TimelineSample;
    if (s.some((v) => v < 0)) return undefined;
    samples.push(s);
  }
  const [interval, peakMs, peakBytes] = [u(off + TIMELINE.intervalMs), u(off + TIMELINE.peakMs), u(off + TIMELINE.peakBytes)];
  if (interval < 0 || peakMs < 0 || peakBytes < 0) return undefined;
  return sortedTimeline(interval, peakMs, peakBytes, samples);
}

function sortedTimeline(intervalMs: number, peakMs: number, peakBytes: number, samples: TimelineSample[]): Timeline {
  // Two writers can interleave by a millisecond; a plot wants time order.
  samples.sort((a, b) => a[0] - b[0]);
  return { fields: [...FIELDS], intervalMs, peakMs, peakBytes, samples };
}
