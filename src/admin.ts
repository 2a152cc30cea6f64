// RFC 6750 §2.1 and §3 (Bearer tokens in Authorization, 401 with WWW-Authenticate: Bearer).
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { hostToString, isLoopback, type Target } from './target.js';

export interface AdminOptions {
  readonly listen: Target;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Re-reads the configuration; throws with the problems when it is refused. */
  readonly reload: () => void;
  /** `admin.token` as configured now (a reload may change it); undefined: none. */
  readonly token: () => string | undefined;
}

export interface Admin {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/**
 * The operator's endpoint: GET /healthz, GET /metrics (Prometheus text format) and POST /reload
 * (what SIGHUP does). It proxies nothing, and it listens only where `admin.listen` says. With
 * `admin.token`, POST /reload needs it as a Bearer token; /healthz and /metrics stay open, as
 * load balancers and scrapers read them and they change nothing.
 */
export async function startAdmin(options: AdminOptions): Promise<Admin> {
  const { log } = options;
  const server: Server = createServer((req, res) => {
    handle(req, res, options);
  });
  server.listen({ host: hostToString(options.listen.host), port: options.listen.port });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => Promise.reject(err as Error)),
  ]);
  const address = server.address() as AddressInfo;
  log.info({ listen: `${address.address}:${address.port}` }, 'admin listening');
  if (!isLoopback(options.listen.host) && options.token() === undefined) {
    log.warn(
      { listen: `${address.address}:${address.port}` },
      'admin endpoint listens beyond loopback without admin.token: anyone who can reach it can reload the configuration',
    );
  }
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function handle(req: IncomingMessage, res: ServerResponse, options: AdminOptions): void {
  const { metrics, log } = options;
  const path = (req.url ?? '/').split('?')[0];
  const reply = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const allow = (method: string): boolean => {
    if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return true;
    res.setHeader('allow', method === 'GET' ? 'GET, HEAD' : method);
    reply(405, `use ${method} ${path ?? ''}\n`);
    return false;
  };
  const authorized = (): boolean => {
    const token = options.token();
    if (token === undefined || bearerMatches(req.headers.authorization, token)) return true;
    log.warn(
      { client: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`, path },
      'admin request refused: no valid token',
    );
    res.setHeader('www-authenticate', 'Bearer realm="junction"');
    reply(
      401,
      `${req.method ?? 'POST'} ${path ?? ''} needs the admin token: Authorization: Bearer <token>\n`,
    );
    return false;
  };
  if (path === '/healthz') {
    if (allow('GET')) reply(200, 'ok\n');
  } else if (path === '/metrics') {
    if (!allow('GET')) return;
    metrics.registry.metrics().then(
      (text) => reply(200, text, metrics.registry.contentType),
      (err: unknown) => {
        log.error({ err }, 'metrics collection failed');
        reply(500, 'metrics collection failed\n');
      },
    );
  } else if (path === '/reload') {
    if (!allow('POST') || !authorized()) return;
    try {
      options.reload();
      reply(200, 'reloaded\n');
    } catch (err) {
      reply(
        400,
        `reload refused, the running configuration stays:\n${err instanceof Error ? err.message : String(err)}\n`,
      );
    }
  } else {
    reply(404, 'not found: GET /healthz, GET /metrics, POST /reload\n');
  }
}

/**
 * `Authorization: Bearer <token>` with exactly `token`. Digests of equal length are compared,
 * so the time taken says nothing about the token's length or its first differing byte.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer +(\S+) *$/i.exec(header ?? '')?.[1];
  if (given === undefined) return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(token));
}
