/**
 * The `--upload-url` template (pure, no I/O): placeholders, validation at
 * start-up, and the redacted form of a URL for logs and Events
 * (docs/configuration.md lists the placeholders).
 */
import { HighwaterError } from '../errors.js';

export const PLACEHOLDERS = ['pod', 'namespace', 'node', 'uid', 'time', 'report', 'file'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** Raises HW_ERR_CONFIG for a template that is not an http(s) URL, lacks {file}, or names an unknown placeholder. */
export function checkTemplate(template: string, name = '--upload-url'): void {
  const bad = (why: string): HighwaterError => new HighwaterError('HW_ERR_CONFIG', `invalid value for ${name}: ${JSON.stringify(redact(template))}; ${why}`);
  for (const m of template.matchAll(/\{([^}]*)\}/g))
    if (!(PLACEHOLDERS as readonly string[]).includes(m[1]!))
      throw bad(`unknown placeholder {${m[1]}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`);
  if (!template.includes('{file}')) throw bad('it needs {file}: every report file goes to its own URL');
  let url: URL;
  try {
    url = new URL(fill(template, { pod: 'p', namespace: 'n', node: 'k', uid: 'u', time: 't', report: 'r', file: 'f' }));
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad('expected an http:// or https:// URL');
}

/** The template with every placeholder replaced by its percent-encoded value. */
export function fill(template: string, values: Record<Placeholder, string>): string {
  return template.replace(/\{(pod|namespace|node|uid|time|report|file)\}/g, (_m, k: Placeholder) => encodeURIComponent(values[k]));
}

/** A URL fit for logs and Events: no query string (a presigned URL's signature) and no credentials. */
export function redact(url: string): string {
  try {
    const u = new URL(url.replace(/\{(\w+)\}/g, '__$1__'));
    u.search = '';
    u.username = '';
    u.password = '';
    return u.toString().replace(/__(\w+)__/g, '{$1}');
  } catch {
    return url.split('?')[0]!;
  }
}

/** `20261129T184500Z` */
export function compactTime(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}
