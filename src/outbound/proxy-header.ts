// The sending side of the PROXY protocol (codec in inbound/proxy-protocol.ts): a connection to
// the first hop (a proxy, or the target of a direct outbound) starts with a header naming the
// client whose session it carries, as a load balancer's would.
import type { Socket } from 'node:net';
import { encodeProxyHeader, type Endpoint } from '../inbound/proxy-protocol.js';
import type { Outbound } from './types.js';

/**
 * An outbound whose TCP connection to its first hop begins with a PROXY protocol header of
 * `version`. Every dial is a tunnel of its own: a connection kept for later plain http://
 * requests would carry one client's header for another's requests.
 */
export function sendingProxyHeader(outbound: Outbound, version: 1 | 2): Outbound {
  return {
    ...outbound,
    dial: (target, context) =>
      outbound.dial(target, { ...context, purpose: 'tunnel', sendProxyProtocol: version }),
  };
}

/**
 * Source: the session's client; destination: the address the connection reached. Without a
 * client (a health check's own connection) the header says so (v2 LOCAL, v1 UNKNOWN).
 */
export function proxyHeader(version: 1 | 2, client: Endpoint | undefined, socket: Socket): Buffer {
  const reached = socket.remoteAddress;
  const destination =
    reached === undefined ? undefined : { ip: reached, port: socket.remotePort ?? 0 };
  return encodeProxyHeader(version, client, destination);
}
