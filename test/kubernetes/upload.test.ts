// --upload-url: real PUTs through undici to FAKE object stores on loopback
// (port 0): one that fails the first tries, one that hangs, one that refuses.
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkTemplate, compactTime, redact } from '../../sidecar/src/upload/template.js';
import { uploadReport } from '../../sidecar/src/upload/upload.js';

interface Put {
  url: string;
  body: string;
  contentType: string | undefined;
}

/** A FAKE object store: answers each PUT with `answer(n)` (n = attempt number from 1), 'hang' = never. */
async function fakeStore(answer: (n: number, url: string) => number | 'hang'): Promise<{ base: string; puts: Put[]; attempts: string[]; server: Server }> {
  const puts: Put[] = [];
  const attempts: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      attempts.push(req.url!);
      const a = answer(attempts.filter((u) => u === req.url).length, req.url!);
      if (a === 'hang') return;
      if (a < 300) puts.push({ url: req.url!, body, contentType: req.headers['content-type'] });
      res.writeHead(a).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, puts, attempts, server };
}

function reportDir(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'hw-up-')), '20261129-184500-oom');
  mkdirSync(dir);
  writeFileSync(join(dir, 'report.json'), '{"trigger":"oom"}\n');
  writeFileSync(join(dir, 'index.html'), '<html>report</html>\n');
  writeFileSync(join(dir, 'flamegraph.svg'), '<svg/>\n');
  writeFileSync(join(tmpdir(), 'hw-up-secret.txt'), 'secret\n');
  symlinkSync(join(tmpdir(), 'hw-up-secret.txt'), join(dir, 'link.txt')); // not ours: never uploaded
  return dir;
}

const values = { pod: 'train-x7k2p', namespace: 'ml', node: 'node-3', uid: 'u-1' };
const timeMs = Date.UTC(2026, 10, 29, 18, 45, 0);

describe('upload', () => {
  const servers: Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      s.close();
    }
  });

  it('PUTs every regular file to the template, index.html last, retrying 503s with back-off', async () => {
    const store = await fakeStore((n) => (n <= 2 ? 503 : 200));
    servers.push(store.server);
    const dir = reportDir();
    const template = `${store.base}/bucket/{namespace}/{pod}/{time}/{report}/{file}?X-Signature=s3cr3t`;
    checkTemplate(template);
    const t0 = Date.now();
    const r = await uploadReport(dir, timeMs, { template, values, backoffMs: 50, budgetMs: 10_000 });
    expect(r.failed).toEqual([]);
    const prefix = '/bucket/ml/train-x7k2p/20261129T184500Z/20261129-184500-oom/';
    expect(store.puts.map((p) => p.url)).toEqual([
      `${prefix}flamegraph.svg?X-Signature=s3cr3t`,
      `${prefix}report.json?X-Signature=s3cr3t`,
      `${prefix}index.html?X-Signature=s3cr3t`,
    ]);
    expect(store.puts.map((p) => p.body)).toEqual(['<svg/>\n', '{"trigger":"oom"}\n', '<html>report</html>\n']);
    expect(store.puts[2]!.contentType).toBe('text/html; charset=utf-8');
    expect(store.attempts).toHaveLength(9); // 3 files x (2 failures + 1 success)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3 * (50 + 100) - 20); // the back-off happened
    // The signature never leaves in a log line or an Event.
    expect(r.indexUrl).toBe(`${store.base}${prefix}index.html`);
    expect(r.uploaded.join(' ')).not.toContain('s3cr3t');
  });

  it('a store that hangs: the whole report gives up within its budget', async () => {
    const store = await fakeStore(() => 'hang');
    servers.push(store.server);
    const t0 = Date.now();
    const r = await uploadReport(reportDir(), timeMs, { template: `${store.base}/{file}`, values, budgetMs: 600, backoffMs: 50 });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(550);
    expect(took).toBeLessThan(2500);
    expect(r.uploaded).toEqual([]);
    expect(r.failed.map((f) => f.file)).toEqual(
      ['flamegraph.svg', 'index.html', 'report.json'].sort((a, b) => Number(a === 'index.html') - Number(b === 'index.html') || a.localeCompare(b)),
    );
    expect(r.failed[0]!.reason).toBe('timed out');
  });

  it('a 403 is final: no retry; an unknown placeholder or a template without {file} is a config error', async () => {
    const store = await fakeStore(() => 403);
    servers.push(store.server);
    const r = await uploadReport(reportDir(), timeMs, { template: `${store.base}/{file}`, values, backoffMs: 10 });
    expect(r.failed.map((f) => f.reason)).toEqual(['HTTP 403', 'HTTP 403', 'HTTP 403']);
    expect(store.attempts).toHaveLength(3);
    expect(() => checkTemplate('https://s3/{bucket}/{file}')).toThrow(/unknown placeholder \{bucket\}/);
    expect(() => checkTemplate('https://s3/x/{pod}')).toThrow(/needs \{file\}/);
    expect(() => checkTemplate('ftp://s3/{file}')).toThrow(/http/);
    expect(redact('https://user:pw@s3.example/b/{pod}/{file}?sig=1')).toBe('https://s3.example/b/{pod}/{file}');
    expect(compactTime(timeMs)).toBe('20261129T184500Z');
  });
});
