import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { Duplex } from 'node:stream';
import { fromDialError, ProxyError, toProxyError, type ErrorCode } from '../errors.js';
import type { DestinationPolicy } from '../policy.js';
import { formatTarget, hostToString, parseHost, type Target } from '../target.js';
import { abortReason, createDirectOutbound, dialTcp, policedLookup } from './direct.js';
import { HttpConnection } from './http-connection.js';
import { createOriginLink } from './http-link.js';
import { createHttpPool, pooledConnection } from './http-pool.js';
import type { Connected, DialContext, Hop, Outbound } from './types.js';

/**
 * The configured proxies themselves are not subject to deny_destinations; a proxy that is
 * junction itself (`-F` at its own port) is still a forwarding loop.
 */
function proxyPolicy(policy: DestinationPolicy): DestinationPolicy {
  return { allows: () => true, isSelf: (ip, port) => policy.isSelf(ip, port) };
}
const proxyLookup = policedLookup({ allows: () => true, isSelf: () => false });

/**
 * An outbound through one or more upstream proxies (a `url:` outbound is a chain of one): TCP to
 * the first proxy, then each hop asked for the next hop's server, the last for the target. All
 * hops share the session's signal, so connect_timeout covers the whole chain. No hops is direct.
 */
export function createChainOutbound(
  name: string,
  hops: readonly Hop[],
  policy: DestinationPolicy,
): Outbound {
  if (hops.length === 0) return createDirectOutbound(policy, name);
  const toProxies = proxyPolicy(policy);
  const forwarding = hops.at(-1)?.forwarding;
  // Plain http:// requests reuse kept-alive connections, per target: to the last proxy when it
  // is an HTTP proxy (requests in absolute-form), else tunnels to the target itself.
  const pool = createHttpPool();

  /** A new connection through every hop, for plain requests. */
  const dialHttp = async (target: Target, key: string, context: DialContext) => {
    const forHttp = forwarding !== undefined;
    const { stream } = await fold(hops, target, context, policy, toProxies, forHttp);
    return new HttpConnection(stream, key);
  };

  /** A kept connection for this target if there is one, else a new one through every hop. */
  const dialForHttp = async (target: Target, context: DialContext): Promise<Connected> => {
    const key = formatTarget(target);
    const { conn, reuse } = await pooledConnection(pool, key, context, (c) =>
      dialHttp(target, key, c),
    );
    return {
      stream: conn.stream,
      bound: undefined,
      http: forwarding ? forwarding.link(conn, reuse, context) : createOriginLink(conn, reuse),
    };
  };

  return {
    name,
    dial(target, context) {
      const denied = deniedLiteral(target, policy);
      if (denied) return Promise.reject(denied);
      if (context.purpose === 'http') return dialForHttp(target, context);
      return fold(hops, target, context, policy, toProxies, false);
    },
  };
}

async function fold(
  hops: readonly Hop[],
  target: Target,
  context: DialContext,
  policy: DestinationPolicy,
  toProxies: DestinationPolicy,
  forHttp: boolean,
): Promise<Connected> {
  const { signal } = context;
  const first = hops[0] as Hop;
  /** Every stream opened for this dial, so that an abort closes all of them. */
  const opened: Duplex[] = [];
  const onAbort = (): void => {
    for (const stream of opened) stream.destroy();
  };
  let stage = `upstream proxy ${first.label}`;
  const last = hops.length - 1;
  /**
   * TCP to the first proxy, then each hop before `index` asked for the next one's server: a
   * stream to hops[index]'s server. Dialled again for a proxy that closes after a challenge.
   */
  const reach = async (index: number) => {
    const linked: Duplex[] = [];
    const track = (stream: Duplex): void => {
      keepTrack(linked, stream);
      if (!opened.includes(stream)) opened.push(stream);
    };
    let conn = await reachFirst(first, context, toProxies);
    track(conn.stream);
    for (let i = 0; i < index; i++) {
      const hop = hops[i] as Hop;
      const next = hops[i + 1] as Hop;
      stage = `upstream proxy ${hop.label}`;
      // The policy applies to the target only; the hops in between are configured proxies.
      const to = await resolveFor(
        hop,
        next.server,
        undefined,
        signal,
        `reach upstream proxy ${next.label}`,
      );
      conn = await hop.connect(conn.stream, to, context, reopen(i));
      track(conn.stream);
      if (signal.aborted) throw abortReason(signal);
    }
    return { conn, track };
  };
  const reopen = (index: number) => async (): Promise<Duplex> => {
    const at = stage;
    const { conn } = await reach(index);
    stage = at;
    return conn.stream;
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const reached = await reach(last);
    const hop = hops[last] as Hop;
    stage = `upstream proxy ${hop.label}`;
    let conn: Connected;
    if (forHttp && hop.forwarding) {
      conn = { stream: await hop.forwarding.open(reached.conn.stream, context), bound: undefined };
    } else {
      const to = await resolveFor(
        hop,
        target,
        policy,
        signal,
        `connect to ${formatTarget(target)}`,
      );
      conn = await hop.connect(reached.conn.stream, to, context, reopen(last));
    }
    reached.track(conn.stream);
    if (signal.aborted) throw abortReason(signal);
    return conn;
  } catch (err) {
    onAbort();
    const error = signal.aborted ? abortReason(signal) : asProxyError(err, stage);
    throw timedOut(error, target, stage);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Failures of the first dial that say more than "the proxy is unreachable". */
const KEPT_CODES: ReadonlySet<ErrorCode> = new Set([
  'CONNECT_TIMEOUT',
  'CLIENT_CLOSED',
  'FORWARDING_LOOP',
]);

/** TCP to the first proxy; its failure says the proxy, not the target, was unreachable. */
async function reachFirst(
  hop: Hop,
  context: DialContext,
  toProxies: DestinationPolicy,
): Promise<Connected> {
  const what = `cannot reach upstream proxy ${hop.label}`;
  try {
    return await dialTcp(hop.server, context, toProxies, proxyLookup, what);
  } catch (err) {
    const error = asProxyError(err, what);
    if (KEPT_CODES.has(error.code)) throw error;
    throw new ProxyError('UPSTREAM_FAILED', error.message);
  }
}

/**
 * A stream that wraps the one before (TLS to a proxy) lives and dies with it. Errors are
 * swallowed here once the dial is over: the last stream's owner listens for its own, and an
 * inner stream's error also closes the stream that wraps it.
 */
function keepTrack(streams: Duplex[], stream: Duplex): void {
  const previous = streams.at(-1);
  if (previous === stream) return;
  stream.on('error', () => undefined);
  if (previous) {
    previous.once('close', () => stream.destroy());
    stream.once('close', () => previous.destroy());
  }
  streams.push(stream);
}

/**
 * socks5 and socks4 carry addresses: names are resolved here, and the policy checked. `what`
 * begins the error messages: for a next hop it names that hop, never its host.
 */
async function resolveFor(
  hop: Hop,
  target: Target,
  policy: DestinationPolicy | undefined,
  signal: AbortSignal,
  what: string,
): Promise<Target> {
  if (hop.resolvesNames || target.host.kind !== 'domain') return target;
  const addresses = await new Promise<LookupAddress[]>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    // One address can be sent, with no falling back to the next: IPv4 first, as proxies more
    // often reach IPv4 than IPv6.
    const options = { all: true, family: hop.ipv4Only ? 4 : 0, order: 'ipv4first' } as const;
    dnsLookup(hostToString(target.host), options, (err, found) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(fromDialError(err, what));
      else resolve(found);
    });
  });
  const allowed = policy ? addresses.filter((a) => policy.allows(a.address)) : addresses;
  const host = allowed[0] && parseHost(allowed[0].address);
  if (!host) throw new ProxyError('DESTINATION_DENIED', `${what}: destination not allowed`);
  return { host, port: target.port };
}

function deniedLiteral(target: Target, policy: DestinationPolicy): ProxyError | undefined {
  if (target.host.kind === 'domain' || policy.allows(target.host.ip)) return undefined;
  return new ProxyError(
    'DESTINATION_DENIED',
    `connect to ${formatTarget(target)}: destination not allowed`,
  );
}

function timedOut(error: ProxyError, target: Target, stage: string): ProxyError {
  if (error.code !== 'CONNECT_TIMEOUT') return error;
  return new ProxyError(
    'CONNECT_TIMEOUT',
    `connect to ${formatTarget(target)} timed out at ${stage}`,
  );
}

function asProxyError(err: unknown, stage: string): ProxyError {
  // Hops translate their own failures; anything else is reported without its details, which
  // could hold credentials.
  return toProxyError(err, new ProxyError('UPSTREAM_FAILED', `${stage}: connect failed`));
}
