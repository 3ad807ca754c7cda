/**
 * `--upload-url TEMPLATE`: PUT every file of a report directory to a URL made
 * from a template (a presigned object-storage URL, any HTTP endpoint), so the
 * report outlives an emptyDir. The one module that imports undici.
 *
 * Placeholders (values percent-encoded): `{pod}`, `{namespace}`, `{node}`,
 * `{uid}` (downward API; `unknown` when unset), `{time}` (the report's time,
 * `20261129T184500Z`), `{report}` (the report directory's name), `{file}`
 * (`index.html`, `report.json`, …). index.html goes last: its presence means
 * the rest is there, as on disk.
 *
 * Retries with exponential back-off (250 ms doubling, at most 4 s) on network
 * errors, timeouts, 408, 429 and 5xx; other 4xx are final. The whole report
 * gets at most `budgetMs` (the pod's termination grace period must cover it);
 * the caller never waits on it to let the application exit.
 */
import { lstatSync, openSync, readdirSync, readSync, closeSync, fstatSync, constants as fsConstants } from 'node:fs';
import { basename, join } from 'node:path';
import { request } from 'undici';
import { compactTime, fill, redact, type Placeholder } from './template.js';

/** Largest report file uploaded (a report is a few MB; anything bigger was not written by us). */
const MAX_FILE_BYTES = 256 * 1024 * 1024;

export interface UploadOptions {
  template: string;
  /** Placeholder values but `file`, `report` and `time` (from the report). */
  values: Omit<Record<Placeholder, string>, 'file' | 'report' | 'time'>;
  /** Total time for the whole report. @default 20000 */
  budgetMs?: number;
  /** First back-off; doubles up to 4 s. @default 250 */
  backoffMs?: number;
  /** Stops retrying (stop of the watcher when the budget is spent). */
  signal?: AbortSignal;
}

export interface UploadResult {
  /** Redacted URLs of the files uploaded. */
  uploaded: string[];
  failed: Array<{ file: string; reason: string }>;
  /** The redacted URL of index.html (where a person opens the report). */
  indexUrl: string;
}

/** Files of a report directory: regular files only (no symlinks), index.html last. */
export function reportFiles(dir: string): string[] {
  const names = readdirSync(dir).filter((n) => {
    try {
      return lstatSync(join(dir, n)).isFile();
    } catch {
      return false;
    }
  });
  return names.sort((a, b) => Number(a === 'index.html') - Number(b === 'index.html') || a.localeCompare(b));
}

/** Reads a regular file without following a symlink, at most MAX_FILE_BYTES. */
function readReportFile(path: string): Buffer {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

const CONTENT_TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  json: 'application/json',
  svg: 'image/svg+xml',
  txt: 'text/plain; charset=utf-8',
};
const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

const UNDICI_TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** PUT one body with retries until `deadline`. Resolves with '' on success, else the last reason. */
async function putWithRetries(url: string, body: Buffer, contentType: string, deadline: number, opts: UploadOptions): Promise<string> {
  let backoff = opts.backoffMs ?? 250;
  let reason = 'no attempt: the upload budget was spent';
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0 || opts.signal?.aborted) return reason;
    try {
      const res = await request(url, {
        method: 'PUT',
        body,
        headers: { 'content-type': contentType, 'content-length': String(body.length) },
        signal: opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(left)]) : AbortSignal.timeout(left),
        headersTimeout: left,
        bodyTimeout: left,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return '';
      reason = `HTTP ${res.statusCode}`;
      const retryable = res.statusCode === 408 || res.statusCode === 429 || res.statusCode >= 500;
      if (!retryable) return reason;
    } catch (e) {
      const err = e as { name?: string; code?: string; message?: string };
      // The abort signal and undici's own header/body timers race for the same deadline: either is a time-out.
      const timedOut = err.name === 'TimeoutError' || err.name === 'AbortError' || UNDICI_TIMEOUTS.has(err.code ?? '');
      reason = timedOut ? 'timed out' : (err.code ?? err.message ?? String(e));
    }
    const wait = Math.min(backoff, deadline - Date.now());
    if (wait <= 0) return reason;
    await sleep(wait, opts.signal);
    backoff = Math.min(backoff * 2, 4000);
  }
}

/** Uploads every file of `dir`; never throws (failures are in the result). */
export async function uploadReport(dir: string, reportTimeMs: number, opts: UploadOptions): Promise<UploadResult> {
  const deadline = Date.now() + (opts.budgetMs ?? 20_000);
  const report = basename(dir);
  const urlOf = (file: string): string => fill(opts.template, { ...opts.values, time: compactTime(reportTimeMs), report, file });
  const result: UploadResult = { uploaded: [], failed: [], indexUrl: redact(urlOf('index.html')) };
  let files: string[];
  try {
    files = reportFiles(dir);
  } catch (e) {
    result.failed.push({ file: dir, reason: (e as NodeJS.ErrnoException).code ?? String(e) });
    return result;
  }
  for (const file of files) {
    let body: Buffer;
    try {
      body = readReportFile(join(dir, file));
    } catch (e) {
      result.failed.push({ file, reason: (e as NodeJS.ErrnoException).code ?? (e as Error).message });
      continue;
    }
    const ext = file.split('.').pop() ?? '';
    const reason = await putWithRetries(urlOf(file), body, CONTENT_TYPES[ext] ?? 'application/octet-stream', deadline, opts);
    if (reason === '') result.uploaded.push(redact(urlOf(file)));
    else result.failed.push({ file, reason });
  }
  return result;
}
