/**
 * Small text helpers shared by the SVG and HTML writers. Pure.
 */

// Characters XML 1.0 forbids even when escaped (C0 controls other than tab,
// LF, CR; lone surrogates; U+FFFE/U+FFFF). Source lines and file names come
// from user code and can hold any of them; one stray byte must not make the
// whole SVG unparseable, so they become U+FFFD.
const XML_INVALID = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const XML_ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for XML/HTML content and attribute values (both quote styles). */
export function escapeXml(text: string): string {
  return text.replace(XML_INVALID, '\uFFFD').replace(/[&<>"']/g, (c) => XML_ENTITIES[c]!);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Binary units with one decimal: `400.0 MiB`, `512 B`. */
export function humanBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** Share of `total` as `71.43%`; `total` 0 gives `0.00%` rather than NaN. */
export function percent(bytes: number, total: number): string {
  return `${(total > 0 ? (bytes / total) * 100 : 0).toFixed(2)}%`;
}

/** The last path component; works for both separators since dumps may come from any OS. */
export function basename(file: string): string {
  const i = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\'));
  return i >= 0 && i < file.length - 1 ? file.slice(i + 1) : file;
}
