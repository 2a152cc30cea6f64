// RFC 6750 §2.1 and §3 (Bearer tokens in Authorization, 401 with WWW-Authenticate: Bearer).
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from './log.js';
import { PAC_CONTENT_TYPE } from './pac.js';
import { hostToString, isLoopback, type Target } from './target.js';

/** What /metrics serves: one process's registry, or the sum over a cluster's workers. */
export interface MetricsSource {
  readonly registry: { metrics(): Promise<string>; readonly contentType: string };
}

export interface AdminOptions {
  readonly listen: Target;
  readonly metrics: MetricsSource;
  readonly log: Logger;
  /** Re-reads the configuration; rejects with the problems when it is refused. */
  readonly reload: () => Promise<void>;
  /** `admin.token` as configured now (a reload may change it); undefined: none. */
  readonly token: () => string | undefined;
  /**
   * The PAC file for an inbound (the first HTTP or mixed one when none is named), with `host`
   * the name the client used to reach this endpoint; a string is why there is none (404).
   */
  readonly pac: (
    inbound: string | undefined,
    host: string | undefined,
  ) => { text: string } | string;
  /** The sessions under way, when this process has them (not a cluster's primary). */
  readonly sessions?: SessionsView;
}

/** GET /sessions and DELETE /sessions/<id>. */
export interface SessionsView {
  list(): readonly Record<string, unknown>[];
  /** Ends the session; false when there is none by that id. */
  close(id: string): boolean;
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
    // A request's failure, thrown or rejected (handle is async), is answered 500 (or the
    // response cut off), never the process's.
    handle(req, res, options).catch((err: unknown) => {
      failed(res, err, log);
    });
  });
  // Bytes that are not HTTP, or a client gone mid-request: node:http's default answers with a
  // 400 too; this one also closes a socket that can no longer be written, and logs.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    log.debug({ err }, 'admin client error');
    if (socket.writable && err.code !== 'ECONNRESET') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    }
    socket.destroy();
  });
  server.listen({ host: hostToString(options.listen.host), port: options.listen.port });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => Promise.reject(err as Error)),
  ]);
  // Past listen, an error (an accept failing for want of descriptors) is logged and survived.
  server.on('error', (err) => {
    log.error({ err }, 'admin endpoint error');
  });
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

/** Answers 500 when nothing was sent yet, else cuts the response short; logs either way. */
function failed(res: ServerResponse, err: unknown, log: Logger): void {
  log.error({ err }, 'admin request failed');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = 'internal error\n';
  res.writeHead(500, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': body.length,
  });
  res.end(body);
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: AdminOptions,
): Promise<void> {
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
    reply(200, await metrics.registry.metrics(), metrics.registry.contentType);
  } else if (path === '/reload') {
    if (!allow('POST') || !authorized()) return;
    try {
      await options.reload();
      reply(200, 'reloaded\n');
    } catch (err) {
      reply(
        400,
        `reload refused, the running configuration stays:\n${err instanceof Error ? err.message : String(err)}\n`,
      );
    }
  } else if (path === '/sessions' || path?.startsWith('/sessions/')) {
    const sessions = options.sessions;
    if (!sessions) {
      reply(404, 'sessions are listed by each worker process, not here\n');
      return;
    }
    const id =
      path === '/sessions' ? undefined : decodeURIComponent(path.slice('/sessions/'.length));
    if (!allow(id === undefined ? 'GET' : 'DELETE') || !authorized()) return;
    if (id === undefined) reply(200, `${JSON.stringify(sessions.list())}\n`, 'application/json');
    else if (sessions.close(id)) reply(200, `closed ${id}\n`);
    else reply(404, `no session ${id}\n`);
  } else if (path === '/proxy.pac') {
    if (!allow('GET')) return;
    const inbound = new URL(req.url ?? '/', 'http://admin').searchParams.get('inbound');
    const hostname = req.headers.host?.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const pac = options.pac(inbound ?? undefined, hostname);
    if (typeof pac === 'string') reply(404, `${pac}\n`);
    else reply(200, pac.text, PAC_CONTENT_TYPE);
  } else {
    reply(
      404,
      'not found: GET /healthz, GET /metrics, GET /proxy.pac, POST /reload, GET /sessions, DELETE /sessions/<id>\n',
    );
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
