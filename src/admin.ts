import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { hostToString, type Target } from './target.js';

export interface AdminOptions {
  readonly listen: Target;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Re-reads the configuration; throws with the problems when it is refused. */
  readonly reload: () => void;
}

export interface Admin {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/**
 * The operator's endpoint: GET /healthz, GET /metrics (Prometheus text format) and POST /reload
 * (what SIGHUP does). It proxies nothing, and it listens only where `admin.listen` says.
 */
export async function startAdmin(options: AdminOptions): Promise<Admin> {
  const { metrics, log } = options;
  const server: Server = createServer((req, res) => {
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
      if (!allow('POST')) return;
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
  });
  server.listen({ host: hostToString(options.listen.host), port: options.listen.port });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => Promise.reject(err as Error)),
  ]);
  const address = server.address() as AddressInfo;
  log.info({ listen: `${address.address}:${address.port}` }, 'admin listening');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
