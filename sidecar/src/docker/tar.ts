/**
 * A tiny tar reader for the archives the Docker engine returns from
 * `GET /containers/{id}/archive` (Go archive/tar: ustar, PAX headers for long
 * names; GNU long names are accepted too). Pure: bytes in, entries out.
 * Only regular files and directories are returned; links and devices are
 * skipped, and unsafe paths (absolute, `..`) are rejected.
 */

export interface TarEntry {
  /** Relative path, `/`-separated, without a trailing slash. */
  path: string;
  type: 'file' | 'directory';
  mode: number;
  /** File contents (empty for directories). */
  data: Buffer;
}

const BLOCK = 512;

function cString(buf: Buffer, start: number, length: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + length ? start + length : end);
}

function octal(buf: Buffer, start: number, length: number): number {
  // Base-256 (GNU) for large values: high bit of the first byte set.
  if (buf[start]! & 0x80) {
    let n = buf[start]! & 0x7f;
    for (let i = 1; i < length; i++) n = n * 256 + buf[start + i]!;
    return n;
  }
  const s = cString(buf, start, length).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** PAX extended header records: `<len> <key>=<value>\n`. */
export function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space === -1) break;
    const len = parseInt(data.toString('utf8', pos, space), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

/** Normalises an entry path; undefined for paths that would escape the target. */
export function safePath(raw: string): string | undefined {
  const parts: string[] = [];
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') return undefined;
    parts.push(p);
  }
  if (raw.startsWith('/') && parts.length === 0) return undefined;
  return parts.join('/');
}

export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

/** Reads every entry of an uncompressed tar archive. */
export function readTar(archive: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let pos = 0;
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  while (pos + BLOCK <= archive.length) {
    const header = archive.subarray(pos, pos + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    const stored = octal(header, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    if (sum !== stored) throw new TarFormatError(`bad header checksum at offset ${pos}`);
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = pos + BLOCK;
    if (dataStart + size > archive.length) throw new TarFormatError(`entry at offset ${pos} is truncated`);
    const data = archive.subarray(dataStart, dataStart + size);
    pos = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x') {
      pax = parsePax(data);
      continue;
    }
    if (type === 'g') continue; // global PAX header: nothing we need
    if (type === 'L') {
      longName = cString(data, 0, data.length);
      continue;
    }

    let name = cString(header, 0, 100);
    const magic = header.toString('latin1', 257, 262);
    const prefix = magic === 'ustar' ? cString(header, 345, 155) : '';
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== undefined) name = longName;
    if (pax.path !== undefined) name = pax.path;
    longName = undefined;
    pax = {};

    if (type !== '0' && type !== '5' && type !== '7') continue; // links, devices, fifos
    const path = safePath(name);
    if (path === undefined) throw new TarFormatError(`unsafe path in archive: ${name}`);
    if (path === '') continue;
    entries.push({
      path,
      type: type === '5' ? 'directory' : 'file',
      mode: octal(header, 100, 8) & 0o7777,
      data: type === '5' ? Buffer.alloc(0) : Buffer.from(data),
    });
  }
  return entries;
}
