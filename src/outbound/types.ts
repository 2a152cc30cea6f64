import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import type { Target } from '../target.js';
import type { HttpConnection } from './http-connection.js';
import type { Reuse } from './http-link.js';
import type { HttpLink } from './plain-request.js';
import type { UdpOutbound } from './udp-types.js';

/**
 * What the stream will carry: raw bytes (CONNECT, SOCKS), or plain http:// requests (see
 * plain-request.ts), which an HTTP proxy as the last hop can take in absolute-form.
 */
export type DialPurpose = 'tunnel' | 'http';

export interface DialContext {
  /** Aborted when the connect timeout passes or the client goes away. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** Default 'tunnel'. */
  readonly purpose?: DialPurpose;
  /**
   * When the connect timeout ends (`Date.now()` ms), for clients that want a timeout of their
   * own (the socks package keeps its timer, and through it the socket, until it fires).
   */
  readonly deadline?: number;
  /**
   * The Via list of the client's request with the inbound's own entry last (HTTP inbound): an
   * HTTP proxy hop sends it on its CONNECT (RFC 9110 §7.6.3), so that a loop is seen.
   */
  readonly via?: readonly string[];
  /** The session's client, for an outbound that names it to its upstream (PROXY protocol). */
  readonly client?: { readonly ip: string; readonly port: number };
  /** The TCP connection this dial opens (to the target or the first proxy) starts with a header. */
  readonly sendProxyProtocol?: 1 | 2;
}

/** A stream that already reaches the target, through every hop. */
export interface Connected {
  readonly stream: Duplex;
  /** The address the far end sees us as, when the outbound knows it (SOCKS BND). */
  readonly bound: Target | undefined;
  /**
   * Purpose 'http': how plain requests are written on the stream (to the origin, or to an
   * upstream HTTP proxy in absolute-form with its credentials), and whether it goes back to a
   * pool after them. Without it the stream reaches the target and takes origin-form requests.
   */
  readonly http?: HttpLink;
}

export interface Outbound {
  readonly name: string;
  /** Resolves with a connected stream; rejects only with ProxyError. */
  dial(target: Target, context: DialContext): Promise<Connected>;
  /**
   * The outbound's UDP side, when it can carry datagrams (SOCKS5 UDP ASSOCIATE): `direct`,
   * `reject`, and a chain that is direct or one SOCKS5 proxy. Datagrams routed to an outbound
   * without one are dropped and counted (`no_udp`).
   */
  readonly udp?: UdpOutbound;
  /**
   * Stops what the outbound runs in the background (a fallback group's health checker), when its
   * runtime is replaced or the gateway stops. Sessions already connected are not affected.
   */
  close?(): void;
}

/**
 * One upstream proxy protocol spoken over an already-open stream (gost's "connector"). A chain
 * folds over its hops: TCP to the first hop's server, then each hop asked for the next one's.
 */
export interface Hop {
  /** Where this proxy listens. */
  readonly server: Target;
  /**
   * How errors name this proxy: its outbound's name, quoted. Errors reach clients, so they never
   * carry the proxy's URL, address or credentials.
   */
  readonly label: string;
  /** socks5h, socks4a, http(s): the proxy resolves names; socks5, socks4: resolve first. */
  readonly resolvesNames: boolean;
  /** SOCKS4 carries IPv4 addresses only. */
  readonly ipv4Only: boolean;
  /** SOCKS5 only: datagrams through the proxy's UDP relay, for a chain of this hop alone. */
  readonly udp?: UdpOutbound;
  /**
   * Asks the proxy at the end of `via` to connect to `target`; rejects only with ProxyError.
   * `reopen` gives a new stream to the same proxy, for a proxy that closes after a challenge.
   */
  connect(
    via: Duplex,
    target: Target,
    context: DialContext,
    reopen?: () => Promise<Duplex>,
  ): Promise<Connected>;
  /** HTTP proxies only: plain http:// requests go to the proxy itself, in absolute-form. */
  readonly forwarding?: HttpForwarding;
}

export interface HttpForwarding {
  /** The stream on which to send requests: TLS to the proxy for https://. */
  open(via: Duplex, context: DialContext): Promise<Duplex>;
  /** Writes requests on `conn` with the proxy's credentials, answering its 407s. */
  link(conn: HttpConnection, reuse: Reuse, context: DialContext): HttpLink;
}
