/**
 * The metrics and health HTTP server (node:http): `/metrics`, `/healthz`
 * (alive) and `/readyz` (503 until `ready()` says the watcher has done its
 * first scan of the run dir: a native sidecar's probe holds the app back
 * until then).
 * `start()` is idempotent, `stop()` tolerant, and the listener is unref()'d
 * so it never keeps the process alive on its own.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';

export interface MetricsServerOptions {
  /** 0 = a free port chosen by the system. */
  port: number;
  /** @default '0.0.0.0' (scraped from outside the container) */
  host?: string;
  /** Readiness for `/readyz`; must not throw. @default always ready */
  ready?: () => boolean;
}

export class MetricsServer {
  private server: Server | undefined;
  private starting: Promise<AddressInfo> | undefined;

  constructor(
    private readonly metrics: Metrics,
    private readonly opts: MetricsServerOptions,
  ) {}

  /** Listen; resolves with the bound address. Calling again returns the same address. */
  start(): Promise<AddressInfo> {
    if (this.starting) return this.starting;
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (path === '/readyz') {
        const ready = this.opts.ready?.() ?? true;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready: first scan of the run dir pending\n');
        return;
      }
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
        return;
      }
      this.metrics.text().then(
        (body) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(body),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`# metrics failed: ${String(e)}\n`),
      );
    });
    server.on('clientError', (_e, sock) => sock.destroy());
    this.server = server;
    this.starting = new Promise<AddressInfo>((resolve, reject) => {
      server.once('error', (e) => {
        this.server = undefined;
        this.starting = undefined;
        reject(e);
      });
      server.listen(this.opts.port, this.opts.host ?? '0.0.0.0', () => {
        server.unref();
        resolve(server.address() as AddressInfo);
      });
    });
    return this.starting;
  }

  /** The bound port, once started. */
  get port(): number | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /** Close; safe before start, after a failed start and more than once. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.starting = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
