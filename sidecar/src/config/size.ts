/**
 * Sizes as users write them: `123` (bytes), `512k`, `100MiB`, `1.5GiB`, `5%`.
 * Binary units only (k = KiB = 1024); `KB`/`MB` are refused as ambiguous.
 */
import { HighwaterError } from '../errors.js';
import type { MinAvailable } from '../memory/heuristics.js';

export type Size = { kind: 'bytes'; bytes: number } | { kind: 'percent'; percent: number };

export const ACCEPTED_SIZE_FORMS = 'bytes (123), KiB/MiB/GiB/TiB (512k, 512KiB, 100MiB, 1.5GiB; case-insensitive), or a percentage of total memory (5%)';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
};

function invalid(text: string, what: string): HighwaterError {
  return new HighwaterError('HW_ERR_CONFIG', `invalid size for ${what}: ${JSON.stringify(text)}; accepted forms: ${ACCEPTED_SIZE_FORMS}`);
}

/** Parse one size. `what` names the flag or variable in the error message. */
export function parseSize(text: string, what = 'size'): Size {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*|%)\s*$/.exec(text);
  if (!m) throw invalid(text, what);
  const value = Number(m[1]);
  const unit = m[2]!;
  if (unit === '%') {
    if (!(value > 0 && value <= 100)) throw invalid(text, what);
    return { kind: 'percent', percent: value };
  }
  const mult = UNITS[unit.toLowerCase()];
  if (mult === undefined) throw invalid(text, what);
  const bytes = Math.floor(value * mult);
  if (!Number.isSafeInteger(bytes)) throw invalid(text, what);
  return { kind: 'bytes', bytes };
}

/**
 * The floor setting: one size or two comma-separated (`100MiB,2%`); the floor
 * is the larger of the two (docs/protocol.md, `HIGHWATER_MIN_AVAILABLE`).
 */
export function parseMinAvailable(text: string, what = '--min-available'): MinAvailable {
  const parts = text.split(',');
  if (parts.length > 2) throw invalid(text, what);
  const out: MinAvailable = {};
  for (const p of parts) {
    const s = parseSize(p, what);
    if (s.kind === 'bytes') {
      if (out.bytes !== undefined) throw invalid(text, what);
      out.bytes = s.bytes;
    } else {
      if (out.percent !== undefined) throw invalid(text, what);
      out.percent = s.percent;
    }
  }
  return out;
}

/** The form the shim reads in `HIGHWATER_MIN_AVAILABLE`: `104857600,2%`. */
export function formatMinAvailable(m: MinAvailable): string {
  const parts: string[] = [];
  if (m.bytes !== undefined) parts.push(String(m.bytes));
  if (m.percent !== undefined) parts.push(`${m.percent}%`);
  return parts.length ? parts.join(',') : '0';
}
