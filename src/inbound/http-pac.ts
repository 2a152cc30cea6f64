// The PAC file (see pac.ts) served by an HTTP or mixed inbound itself, at `GET /proxy.pac`: a
// browser configured with `http://proxy:port/proxy.pac` learns which requests to send there.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { generatePac, PAC_CONTENT_TYPE, type PacEndpoint } from '../pac.js';
import type { RuleConfig } from '../config/schema.js';
import { hostToString, parseHostPort } from '../target.js';
import type { ProtocolEnv } from './types.js';

export const PAC_PATH = '/proxy.pac';

/** True for the one origin-form request a proxy answers itself. */
export function asksForPac(req: IncomingMessage): boolean {
  const path = (req.url ?? '').split('?')[0];
  return path === PAC_PATH && (req.method === 'GET' || req.method === 'HEAD');
}

export function servePac(
  env: ProtocolEnv,
  rules: readonly RuleConfig[],
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const body = generatePac(env.config, rules, endpointOf(req));
  res.writeHead(200, {
    'content-type': PAC_CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-cache',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Where the browser reached the inbound: the Host it asked for (a name survives address
 * changes), else the address its connection arrived at (right even behind a wildcard bind).
 */
export function endpointOf(req: IncomingMessage): PacEndpoint {
  const socket = req.socket;
  const fallback = { host: socket.localAddress ?? '127.0.0.1', port: socket.localPort ?? 0 };
  const hostHeader = req.headers.host;
  if (hostHeader === undefined) return fallback;
  const target = parseHostPort(/:\d+$/.test(hostHeader) ? hostHeader : `${hostHeader}:80`);
  return target ? { host: hostToString(target.host), port: target.port } : fallback;
}
