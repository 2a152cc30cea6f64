import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { connect, type LookupFunction, type Socket } from 'node:net';
import { fromDialError, ProxyError } from '../errors.js';
import type { DestinationPolicy } from '../policy.js';
import { formatTarget, hostToString, type Target } from '../target.js';
import { HttpConnection } from './http-connection.js';
import { createOriginLink } from './http-link.js';
import { createHttpPool, pooledConnection } from './http-pool.js';
import { proxyHeader } from './proxy-header.js';
import { abortedFor, listenForAbort } from './dial-abort.js';
import type { Connected, DialContext, Outbound } from './types.js';

export { abortReason } from './dial-abort.js';

const DENIED = 'DESTINATION_DENIED';
const ORIGIN_POOL_LIMITS = { idleMs: 4_000, perTarget: 128, total: 512 } as const;

/**
 * Opens a TCP connection to the target itself. Names are resolved by the OS resolver and tried
 * with Happy Eyeballs (`autoSelectFamily`). The destination policy is applied to every address
 * the resolver returns, so a name that points at a denied address is refused too.
 */
export function createDirectOutbound(policy: DestinationPolicy, name = 'direct'): Outbound {
  const lookup = policedLookup(policy);
  // Plain http:// requests keep their origin connections, per target, as a browser would: a new
  // TCP connection per request is most of a forwarded request's cost. Many clients share one
  // gateway, so a busy origin gets more idle connections than a single browser would keep.
  const pool = createHttpPool(ORIGIN_POOL_LIMITS);
  const dialHttp = async (target: Target, key: string, context: DialContext) =>
    new HttpConnection((await dialTcp(target, context, policy, lookup)).stream, key);
  return {
    name,
    async dial(target, context) {
      if (context.purpose !== 'http') return dialTcp(target, context, policy, lookup);
      const key = formatTarget(target);
      const { conn, reuse } = await pooledConnection(pool, key, context, (c) =>
        dialHttp(target, key, c),
      );
      return { stream: conn.stream, bound: undefined, http: createOriginLink(conn, reuse) };
    },
  };
}

/**
 * `what` begins every error message ("connect to host:port: ECONNREFUSED"). Chains dial their
 * first proxy with it too, without the destination policy (it applies to targets, not to the
 * configured proxies) and with a `what` that names the proxy.
 */
export function dialTcp(
  target: Target,
  context: Pick<DialContext, 'signal' | 'client' | 'sendProxyProtocol'>,
  policy: DestinationPolicy,
  lookup: LookupFunction,
  named?: string,
): Promise<Connected> {
  const host = hostToString(target.host);
  // Spelt out only for an error: a successful dial never needs it.
  const what = (): string => named ?? `connect to ${formatTarget(target)}`;
  if (target.host.kind !== 'domain') {
    if (policy.isSelf(host, target.port)) return Promise.reject(forwardingLoop(what()));
    if (!policy.allows(host)) {
      return Promise.reject(new ProxyError(DENIED, `${what()}: destination not allowed`));
    }
  }
  return new Promise<Connected>((resolve, reject) => {
    // Not net.connect's `signal` option: that one stays attached for the socket's whole life,
    // and the connect timeout would then cut every relay short.
    const socket: Socket = connect({
      host,
      port: target.port,
      lookup,
      autoSelectFamily: true,
      noDelay: true,
      allowHalfOpen: true,
    });
    const onAbort = (reason: ProxyError): void => {
      socket.destroy();
      reject(reason);
    };
    const early = abortedFor(context);
    if (early) {
      onAbort(early);
      return;
    }
    // The session's own abort when the context is its own (no AbortSignal made), else the signal.
    const stopListening = listenForAbort(context, onAbort);
    const onError = (err: Error): void => {
      stopListening();
      socket.off('connect', onConnect);
      socket.destroy();
      reject(translate(err, what()));
    };
    const onConnect = (): void => {
      stopListening();
      socket.off('error', onError);
      socket.off('connect', onConnect);
      // A name (localhost, a host's own name) can lead back to junction too; the address
      // actually reached says so whatever the spelling. Closed before a byte is sent, the
      // connection is a probe for the listener that accepted it.
      if (
        target.host.kind === 'domain' &&
        policy.isSelf(socket.remoteAddress ?? '', socket.remotePort ?? 0)
      ) {
        socket.destroy();
        reject(forwardingLoop(what()));
        return;
      }
      // Before any byte of the protocol: the far end learns whose connection this is.
      const { sendProxyProtocol } = context;
      if (sendProxyProtocol) socket.write(proxyHeader(sendProxyProtocol, context.client, socket));
      resolve({ stream: socket, bound: undefined });
    };
    // Plain listeners, taken off by hand: once() would add a wrapper each.
    socket.on('error', onError);
    socket.on('connect', onConnect);
  });
}

function forwardingLoop(what: string): ProxyError {
  return new ProxyError('FORWARDING_LOOP', `${what}: that is junction itself (forwarding loop)`);
}

function translate(err: Error, what: string): ProxyError {
  if ((err as NodeJS.ErrnoException).code === DENIED) {
    return new ProxyError(DENIED, `${what}: destination not allowed`);
  }
  return fromDialError(err, what);
}

/** dns.lookup, minus the addresses the policy denies; an answer with none left is an error. */
export function policedLookup(policy: DestinationPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) {
        callback(err, '', 0);
        return;
      }
      const allowed = addresses.filter((a) => policy.allows(a.address));
      if (allowed.length === 0) {
        const denied = Object.assign(new Error(`${hostname}: destination not allowed`), {
          code: DENIED,
        });
        callback(denied, '', 0);
        return;
      }
      if (options.all) {
        (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      } else {
        const first = allowed[0] as LookupAddress;
        callback(null, first.address, first.family);
      }
    });
  };
}
