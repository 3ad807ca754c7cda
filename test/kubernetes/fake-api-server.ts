/**
 * A FAKE Kubernetes API server (no real one can run here): loopback HTTP on
 * port 0 serving only events.k8s.io/v1 Events, with the API server's
 * validation rules for them enforced on every create (required fields,
 * lengths, note ≤ 1024 bytes, MicroTime format, namespace = the regarded
 * object's, deprecated fields unset, qualified reportingController), bearer
 * token checks (401), an RBAC switch (403), list with a `reason=` field
 * selector and watch (newline-delimited JSON). Invalid bodies get the 422
 * Status the real server sends, so a client bug fails a test. Plain HTTP
 * (client-node allows it only with skipTLSVerify, which those tests set), or
 * HTTPS with a given key and certificate (verified against a CA file, as
 * in a pod).
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- untyped YAML and JSON bodies */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';

export type FakeMode = 'ok' | 'forbidden' | 'hang' | 'error500';

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;

/** The events.k8s.io/v1 create validation (k8s.io/kubernetes pkg/apis/core/validation, ValidateEventCreateUpdate). */
export function validateEvent(e: Record<string, any>, urlNamespace: string): string[] {
  const errs: string[] = [];
  const req = (v: unknown, field: string, max = 128): void => {
    if (typeof v !== 'string' || v === '') errs.push(`${field}: Required value`);
    else if (v.length > max) errs.push(`${field}: Too long: must have at most ${max} characters`);
  };
  if (e.apiVersion !== 'events.k8s.io/v1' || e.kind !== 'Event') errs.push('apiVersion/kind: must be events.k8s.io/v1 Event');
  const md = e.metadata ?? {};
  if (!md.name && !md.generateName) errs.push('metadata.name: Required value');
  if (md.name && (md.name.length > 253 || !DNS1123_SUBDOMAIN.test(md.name))) errs.push('metadata.name: Invalid value: not a DNS-1123 subdomain');
  if (md.namespace !== undefined && md.namespace !== urlNamespace) errs.push('metadata.namespace: does not match the namespace in the URL');
  if (typeof e.eventTime !== 'string' || !MICRO_TIME.test(e.eventTime))
    errs.push(`eventTime: Required value (RFC 3339 with microseconds), got ${JSON.stringify(e.eventTime)}`);
  req(e.reportingController, 'reportingController', 253);
  if (typeof e.reportingController === 'string' && !QUALIFIED_NAME.test(e.reportingController))
    errs.push('reportingController: Invalid value: not a qualified name');
  req(e.reportingInstance, 'reportingInstance');
  req(e.action, 'action');
  req(e.reason, 'reason');
  if (e.type !== 'Normal' && e.type !== 'Warning') errs.push('type: Unsupported value: must be Normal or Warning');
  const r = e.regarding;
  if (!r || typeof r.kind !== 'string' || typeof r.name !== 'string') errs.push('regarding: Required value (kind, name)');
  else if ((r.namespace ?? '') !== urlNamespace) errs.push('regarding.namespace: does not match the event namespace');
  if (typeof e.note === 'string' && Buffer.byteLength(e.note, 'utf8') > 1024) errs.push('note: Too long: must have at most 1024 bytes');
  for (const f of ['deprecatedSource', 'deprecatedFirstTimestamp', 'deprecatedLastTimestamp'])
    if (e[f] !== undefined && e[f] !== null) errs.push(`${f}: Forbidden: needs to be unset`);
  if (e.deprecatedCount !== undefined && e.deprecatedCount !== 0) errs.push('deprecatedCount: Forbidden: needs to be unset');
  return errs;
}

export interface FakeApiServer {
  url: string;
  token: string;
  mode: FakeMode;
  /** Every Event accepted, in order. */
  events: Array<Record<string, any>>;
  /** Every request, as `METHOD path?query`. */
  requests: string[];
  /** Every create attempt (accepted or not), with the validation errors. */
  creates: Array<{ namespace: string; body: unknown; errors: string[]; status: number }>;
  /** Store an Event as if another client had created it (list/watch tests). */
  add(event: Record<string, any>): void;
  /** A kubeconfig file body pointing at this server. */
  kubeconfig(): string;
  close(): Promise<void>;
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res
    .writeHead(code, { 'content-type': 'application/json' })
    .end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }));
}

export async function startFakeApiServer(token = 'fake-token', tls?: { key: string; cert: string }): Promise<FakeApiServer> {
  let rv = 100;
  const watchers = new Set<{ ns: string | undefined; res: ServerResponse }>();
  const sockets = new Set<Socket>();
  const fake: FakeApiServer = {
    url: '',
    token,
    mode: 'ok',
    events: [],
    creates: [],
    requests: [],
    add(event) {
      event.metadata = { ...event.metadata, resourceVersion: String(++rv), creationTimestamp: new Date().toISOString() };
      fake.events.push(event);
      for (const w of watchers)
        if (w.ns === undefined || w.ns === event.metadata.namespace) w.res.write(JSON.stringify({ type: 'ADDED', object: event }) + '\n');
    },
    kubeconfig: () =>
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: fake\n  cluster:\n    server: ${fake.url}\n    insecure-skip-tls-verify: true`,
        'users:',
        `- name: fake\n  user:\n    token: ${token}`,
        'contexts:',
        '- name: fake\n  context:\n    cluster: fake\n    user: fake',
        'current-context: fake',
        '',
      ].join('\n'),
    close: () =>
      new Promise<void>((resolve) => {
        for (const w of watchers) w.res.end();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string): void => {
    const url = new URL(req.url ?? '/', 'http://fake');
    fake.requests.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    if (fake.mode === 'hang') return; // never answers
    if (fake.mode === 'error500') return status(res, 500, 'InternalError', 'etcdserver: request timed out');
    const m = /^\/apis\/events\.k8s\.io\/v1\/(?:namespaces\/([^/]+)\/)?events$/.exec(url.pathname);
    if (!m) return status(res, 404, 'NotFound', `the server could not find the requested resource ${url.pathname}`);
    const ns = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
    if (fake.mode === 'forbidden') {
      const verb = req.method === 'POST' ? 'create' : 'list';
      return status(
        res,
        403,
        'Forbidden',
        `events.events.k8s.io is forbidden: User "system:serviceaccount:${ns ?? 'default'}:default" cannot ${verb} resource "events" in API group "events.k8s.io"`,
      );
    }
    if (req.method === 'POST') {
      if (ns === undefined) return status(res, 405, 'MethodNotAllowed', 'POST needs a namespace');
      let parsed: Record<string, any>;
      try {
        parsed = JSON.parse(body) as Record<string, any>;
      } catch {
        return status(res, 400, 'BadRequest', 'invalid JSON');
      }
      const errors = validateEvent(parsed, ns);
      fake.creates.push({ namespace: ns, body: parsed, errors, status: errors.length ? 422 : 201 });
      if (errors.length) return status(res, 422, 'Invalid', `Event.events.k8s.io "${parsed.metadata?.name}" is invalid: ${errors.join(', ')}`);
      fake.add(parsed);
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify(parsed));
      return;
    }
    if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', req.method ?? '');
    const selector = url.searchParams.get('fieldSelector') ?? '';
    const reason = /^reason=(.+)$/.exec(selector)?.[1];
    const matches = (e: Record<string, any>): boolean => (ns === undefined || e.metadata.namespace === ns) && (reason === undefined || e.reason === reason);
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      const from = Number(url.searchParams.get('resourceVersion') ?? 0);
      for (const e of fake.events) if (matches(e) && Number(e.metadata.resourceVersion) > from) res.write(JSON.stringify({ type: 'ADDED', object: e }) + '\n');
      const filtered = {
        ns,
        res: { write: (s: string) => (matches(JSON.parse(s).object) ? res.write(s) : true), end: () => res.end() } as unknown as ServerResponse,
      };
      watchers.add(filtered);
      res.on('close', () => watchers.delete(filtered)); // not req's 'close': that fires once the request is read
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(
        JSON.stringify({ kind: 'EventList', apiVersion: 'events.k8s.io/v1', metadata: { resourceVersion: String(rv) }, items: fake.events.filter(matches) }),
      );
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => handle(req, res, body));
  };
  const server: Server = tls ? createTlsServer(tls, onRequest) : createServer(onRequest);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

/** A self-signed certificate for 127.0.0.1, written to dir/<name>.{key,crt}: the fake's TLS identity (or another CA's). */
export function selfSignedCert(dir: string, name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  const subject = ['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', ...subject, '-keyout', key, '-out', crt], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(crt, 'utf8') };
}
