// The sending side of the PROXY protocol (codec in inbound/proxy-protocol.ts): a connection to
// the first hop (a proxy, or the target of a direct outbound) starts with a header naming the
// client whose session it carries, as a load balancer's would.
import type { Duplex } from 'node:stream';
import type { DestinationPolicy } from '../policy.js';
import { hostToString } from '../target.js';
import { encodeProxyHeader, type Endpoint } from '../inbound/proxy-protocol.js';
import { createChainOutbound } from './chain.js';
import { createDirectOutbound } from './direct.js';
import type { Connected, DialContext, Hop, Outbound } from './types.js';

/**
 * A chain (or, with no hops, a direct outbound) whose TCP connection to its first hop begins
 * with a PROXY protocol header of `version`. Its connections are not kept for other requests:
 * each header names one client.
 */
export function createProxyHeaderOutbound(
  version: 1 | 2,
  name: string,
  hops: readonly Hop[],
  policy: DestinationPolicy,
): Outbound {
  const [first, ...rest] = hops;
  if (!first) {
    const direct = createDirectOutbound(policy, name);
    return {
      name,
      async dial(target, context) {
        // A tunnel, whatever the purpose: a pooled origin connection would name another client.
        const { stream, bound } = await direct.dial(target, { ...context, purpose: 'tunnel' });
        stream.write(headerFor(version, stream, undefined, context));
        return { stream, bound };
      },
    };
  }
  const chain = createChainOutbound(name, [sendingHeader(version, first), ...rest], policy);
  return {
    name,
    async dial(target, context) {
      return unkept(await chain.dial(target, context));
    },
  };
}

function sendingHeader(version: 1 | 2, hop: Hop): Hop {
  const forwardHttp = hop.forwardHttp?.bind(hop);
  return {
    ...hop,
    connect(via, target, context, reopen) {
      via.write(headerFor(version, via, hop, context));
      return hop.connect(via, target, context, reopen);
    },
    ...(forwardHttp && {
      forwardHttp(via: Duplex, context: DialContext) {
        via.write(headerFor(version, via, hop, context));
        return forwardHttp(via, context);
      },
    }),
  };
}

/** Without `keep`, the caller closes the connection after its request. */
function unkept(connected: Connected): Connected {
  const { stream, bound, httpProxy } = connected;
  if (!httpProxy) return { stream, bound };
  const link = { ...httpProxy };
  delete link.keep;
  return { stream, bound, httpProxy: link };
}

/**
 * Source: the client of the session; destination: the address the connection reached. Without
 * a client (a health check's connection) the header says so (v2 LOCAL, v1 UNKNOWN).
 */
function headerFor(
  version: 1 | 2,
  stream: Duplex,
  hop: Hop | undefined,
  context: DialContext,
): Buffer {
  const socket = stream as Duplex & { remoteAddress?: string; remotePort?: number };
  const server = hop && hop.server.host.kind !== 'domain' ? hop.server : undefined;
  const destination: Endpoint | undefined =
    socket.remoteAddress !== undefined
      ? { ip: socket.remoteAddress, port: socket.remotePort ?? 0 }
      : server && { ip: hostToString(server.host), port: server.port };
  return encodeProxyHeader(version, context.client, destination);
}
