// The one state-file layout module against the tables of docs/protocol.md
// "State file" and "Timeline": the doc is parsed here, so a field added,
// moved or resized on one side and not the other fails this test.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AREA_RECORD,
  EXIT_OOM,
  FUNC_RECORD,
  HEADER,
  HEADER_TEXT,
  NODE_BYTES_RECORD,
  NODE_RECORD,
  OOM_REASONS,
  PEAK_SOURCES,
  READING_FIELDS,
  READINGS_SOURCES,
  readArgv,
  readCString,
  readHeaderText,
  readingOffset,
  SHIM_EXITED,
  shimExitStatus,
  splitCmdline,
  STATE_HEADER_SIZE,
  STATE_MAGIC,
  STATE_VERSION,
  TIMELINE,
  TIMELINE_HEADER,
  TIMELINE_MAX_SAMPLES,
  TIMELINE_SAMPLE,
  TIMELINE_SAMPLE_FIELDS,
} from '../../sidecar/src/state/layout.js';

const PROTOCOL = readFileSync(join(import.meta.dirname, '../../docs/protocol.md'), 'utf8');

/** The text from a heading line to the next heading of the same or a higher level. */
function section(heading: string): string {
  const lines = PROTOCOL.split('\n');
  const start = lines.findIndex((l) => l.startsWith(heading));
  if (start < 0) throw new Error(`docs/protocol.md has no heading "${heading}"`);
  const level = heading.indexOf(' ');
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l) && l.indexOf(' ') <= level);
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** `| offset | field |` rows of a section's first table (sub-sections excluded). */
function tableRows(text: string): Array<{ offset: number; text: string }> {
  const own = text.split('\n###')[0]!;
  return [...own.matchAll(/^\| (\d+) \| (.*) \|$/gm)].map((m) => ({ offset: Number(m[1]), text: m[2]! }));
}

function camel(words: string): string {
  return words.trim().replace(/ (\w)/g, (_, c: string) => c.toUpperCase());
}

/** Backticked identifiers of a text, in order. */
function ticked(text: string): string[] {
  return [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
}

const STATE = section('## State file');
const TIMELINE_DOC = section('### Timeline');
const ROWS = tableRows(STATE);

/**
 * The field names a state-table row documents, by the doc's own wording:
 * "offset of `x`" is xOffset, "`u32` a, `u32` b c" two u32 fields, else the
 * first backticked name, else the first word (magic, pid, Python, argv, cwd).
 */
function rowFields(row: { offset: number; text: string }): Array<[string, number]> {
  const t = row.text;
  const u32s = [...t.matchAll(/`u32` ([a-z ]+?) \(/g)].map((m) => camel(m[1]!));
  if (u32s.length > 0) return u32s.map((name, k) => [name, row.offset + 4 * k]);
  const area = /^offset of `(\w+)`/.exec(t);
  if (area) return [[`${area[1]}Offset`, row.offset]];
  if (/^readings at /.test(t)) return [['readings', row.offset]];
  const first = /^`(\w+)`/.exec(t);
  if (first) return [[first[1]!, row.offset]];
  return [[/^(\w+)/.exec(t)![1]!.toLowerCase(), row.offset]];
}

function rowOf(field: string): string {
  const row = ROWS.find((r) => rowFields(r).some(([name]) => name === field));
  if (!row) throw new Error(`docs/protocol.md documents no state header field ${field}`);
  return row.text;
}

describe('state layout = docs/protocol.md "State file"', () => {
  it('has every documented header field at its documented offset, and no other', () => {
    expect(ROWS.length).toBeGreaterThan(25); // the table was found and read
    const documented = Object.fromEntries(ROWS.flatMap(rowFields));
    expect({ ...HEADER }).toEqual(documented);
  });

  it('says the header size, magic and version the doc says', () => {
    expect(STATE).toContain(`A ${STATE_HEADER_SIZE}-byte header`);
    expect(ticked(rowOf('magic'))).toEqual([STATE_MAGIC]);
    expect(rowOf('version')).toContain(`version (${STATE_VERSION})`);
    expect(rowOf('version')).toContain(`header size (${STATE_HEADER_SIZE})`);
  });

  it('lays the fields out without overlap inside the header', () => {
    const sizeOf = (name: string): number =>
      name === 'magic'
        ? STATE_MAGIC.length
        : name === 'version' || name === 'headerSize'
          ? 4
          : name === 'readings'
            ? READING_FIELDS.length * 8
            : name in HEADER_TEXT
              ? HEADER_TEXT[name as keyof typeof HEADER_TEXT]
              : 8;
    const fields = Object.entries(HEADER).sort((a, b) => a[1] - b[1]);
    for (let i = 0; i < fields.length; i++) {
      const [name, off] = fields[i]!;
      const end = off + sizeOf(name);
      const next = i + 1 < fields.length ? fields[i + 1]![1] : STATE_HEADER_SIZE;
      expect(end, `${name} at ${off} ends at ${end}, the next field starts at ${next}`).toBeLessThanOrEqual(next);
      if (sizeOf(name) >= 8) expect(off % 8, `${name} is 8-byte aligned`).toBe(0);
    }
  });

  it('sizes the text fields as documented', () => {
    for (const [name, size] of Object.entries(HEADER_TEXT)) expect(rowOf(name)).toContain(`${size} bytes`);
  });

  it('reads the readings in the documented order, ending where the doc says', () => {
    const text = rowOf('readings');
    expect(ticked(text.split(':')[1]!)).toEqual([...READING_FIELDS]);
    const end = HEADER.readings + READING_FIELDS.length * 8;
    expect(text).toContain(`${READING_FIELDS.length} × u64, ends at ${end}`);
    expect(readingOffset('limitBytes')).toBe(HEADER.readings);
    expect(readingOffset('swapBytes')).toBe(end - 8);
  });

  it('numbers the enums as documented', () => {
    const numbered = (text: string) => [...text.matchAll(/(\d+) ([a-z][a-z0-9-]*)/g)].map((m) => [Number(m[1]), m[2]]);
    expect(numbered(rowOf('readingsSource'))).toEqual(READINGS_SOURCES.map((s, i) => [i, s]));
    expect(numbered(rowOf('oomReason'))).toEqual(OOM_REASONS.map((s, i) => [i, s ?? 'none']));
    const peak = [...rowOf('peakSource').matchAll(/(\d+) = [^`;]*`(\w+)`/g)].map((m) => [Number(m[1]), m[2]]);
    expect(peak).toEqual(PEAK_SOURCES.map((s, i) => [i, s]));
  });

  it('encodes the shim-ended exit status as documented, with the documented OOM exit code', () => {
    expect(rowOf('exitStatus')).toContain(`0x${SHIM_EXITED.toString(16)} + code`);
    expect(shimExitStatus(EXIT_OOM)).toBe(0x100 + 53);
    const oomCommand = section('## Control channel')
      .split('\n')
      .find((l) => l.startsWith('| `oom'));
    expect(oomCommand).toContain(`the process exits ${EXIT_OOM}`);
  });

  it('has the documented record layouts and sizes of the areas', () => {
    const record = (name: string) => {
      const line = STATE.split('\n').find((l) => l.startsWith(`- \`${name}\` record:`));
      const fields = ticked(line ?? '')[1]!
        .split(', ')
        .map((f) => f.split(' '));
      expect(fields.every(([type]) => type === 'u32')).toBe(true);
      return { size: fields.length * 4, ...Object.fromEntries(fields.map(([, n], k) => [n, k * 4])) };
    };
    expect({ ...FUNC_RECORD }).toEqual(record('funcs'));
    expect({ ...NODE_RECORD }).toEqual(record('nodes'));
    expect(rowOf('funcsOffset')).toContain(`${FUNC_RECORD.size}-byte records`);
    expect(rowOf('nodesOffset')).toContain(`${NODE_RECORD.size}-byte records`);
    for (const area of ['liveOffset', 'snapshotOffset'] as const) {
      expect(rowOf(area)).toContain('`i64` per node');
      expect(AREA_RECORD[area]).toBe(NODE_BYTES_RECORD);
    }
    expect(NODE_BYTES_RECORD).toBe(8);
    // Every area offset but the timeline (a region of its own, below) has a record size.
    const areas = Object.keys(HEADER).filter((k) => k.endsWith('Offset') && k !== 'timelineOffset');
    expect(Object.keys(AREA_RECORD).sort()).toEqual(areas.sort());
  });
});

describe('state layout = docs/protocol.md "Timeline"', () => {
  it('has the documented region header, sample layout and bound', () => {
    const rows = tableRows(TIMELINE_DOC);
    const header = Object.fromEntries(rows.filter((r) => !r.text.startsWith('samples')).map((r) => [/^`(\w+)`/.exec(r.text)![1]!, r.offset]));
    const samples = rows.find((r) => r.text.startsWith('samples:'))!;
    expect({ ...TIMELINE }).toEqual({ ...header, samples: samples.offset });
    expect(TIMELINE_HEADER).toBe(TIMELINE.samples);
    expect(TIMELINE_DOC).toContain(`A ${TIMELINE_HEADER}-byte region header`);
    const sampleFields = ticked(samples.text)[0]!
      .split(', ')
      .map((f) => f.split(' '));
    expect(sampleFields.map(([, n]) => n)).toEqual([...TIMELINE_SAMPLE_FIELDS]);
    expect(sampleFields.every(([type]) => type === 'u64' || type === 'i64')).toBe(true);
    expect(TIMELINE_SAMPLE).toBe(sampleFields.length * 8);
    expect(TIMELINE_DOC).toContain(`samples of ${TIMELINE_SAMPLE} bytes`);
    expect(rows.find((r) => r.offset === TIMELINE.capacity)!.text).toContain(`(${TIMELINE_MAX_SAMPLES})`);
  });
});

describe('state layout helpers', () => {
  it('reads NUL-terminated and NUL-padded text, and a field with no NUL up to its length', () => {
    const b = Buffer.alloc(STATE_HEADER_SIZE);
    b.write('3.12.1\0junk', HEADER.python, 'latin1');
    b.write('/app/é', HEADER.cwd, 'utf8');
    expect(readHeaderText(b, 'python')).toBe('3.12.1');
    expect(readHeaderText(b, 'cwd')).toBe('/app/é');
    expect(readCString(Buffer.from('abcdef'), 1, 3)).toBe('bcd');
  });

  it('splits a cmdline: NUL-separated, NUL-padded, cut short, empty arguments kept', () => {
    expect(splitCmdline(Buffer.from('python3\0job.py\0\0\0'))).toEqual(['python3', 'job.py']);
    expect(splitCmdline(Buffer.from('python3\0\0-c\0'))).toEqual(['python3', '', '-c']);
    expect(splitCmdline(Buffer.from('python3\0long-argument-cut'))).toEqual(['python3', 'long-argument-cut']);
    expect(splitCmdline(Buffer.alloc(16))).toEqual([]);
    const b = Buffer.alloc(STATE_HEADER_SIZE);
    b.write('x'.repeat(HEADER_TEXT.argv + 10), HEADER.argv, 'latin1');
    expect(readArgv(b)).toEqual(['x'.repeat(HEADER_TEXT.argv)]); // bounded by the field, not the buffer
  });
});
