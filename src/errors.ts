/**
 * The one place that knows how a failure is told to a client, in every protocol.
 * Inbounds read `code`; outbounds translate foreign errors into a ProxyError at their edge.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'AUTH_REQUIRED'
  | 'AUTH_FAILED'
  | 'NOT_ALLOWED'
  | 'RULE_REJECT'
  | 'DESTINATION_DENIED'
  | 'FORWARDING_LOOP'
  | 'CMD_UNSUPPORTED'
  | 'ATYP_UNSUPPORTED'
  | 'DNS_FAILED'
  | 'NET_UNREACHABLE'
  | 'HOST_UNREACHABLE'
  | 'CONN_REFUSED'
  | 'CONNECT_TIMEOUT'
  | 'UPSTREAM_FAILED'
  | 'UPSTREAM_AUTH_FAILED'
  | 'UPSTREAM_REFUSED'
  | 'UPSTREAM_TIMEOUT'
  | 'HANDSHAKE_TIMEOUT'
  | 'IDLE_TIMEOUT'
  | 'CLIENT_CLOSED'
  | 'SHUTDOWN'
  | 'CLOSED_BY_ADMIN'
  | 'LIMIT'
  | 'USER_LIMIT'
  | 'INTERNAL';

/** What is known of an upstream's part in a failure, for those who decide on it (failover). */
export interface UpstreamDetail {
  /** A SOCKS5 REP from an upstream proxy, handed to our client unchanged. */
  readonly reply?: number;
  /**
   * The upstream proxy answered the request (an HTTP status, a SOCKS reply): it works, and what
   * it reported is about the target, not about the proxy.
   */
  readonly answered?: boolean;
}

export class ProxyError extends Error {
  override readonly name = 'ProxyError';
  readonly code: ErrorCode;
  /** A SOCKS5 REP from an upstream proxy, handed to our client unchanged. */
  readonly upstreamReply: number | undefined;
  /** True when an upstream proxy answered the request with this failure (see UpstreamDetail). */
  readonly upstreamAnswered: boolean;

  constructor(code: ErrorCode, message: string, upstream: UpstreamDetail = {}) {
    super(message);
    this.code = code;
    this.upstreamReply = upstream.reply;
    this.upstreamAnswered = upstream.answered === true || upstream.reply !== undefined;
  }
}

interface Reply {
  /** RFC 1928 §6 REP */
  readonly socks5: number;
  /** SOCKS4 CD: 0x5B rejected or failed, 0x5C/0x5D identd (never used) */
  readonly socks4: number;
  readonly http: number;
}

const SOCKS4_FAILED = 0x5b;

/** SPEC "SOCKS5 replies" and "HTTP inbound: Errors", one row per failure. */
export const REPLIES: Readonly<Record<ErrorCode, Reply>> = {
  BAD_REQUEST: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 400 },
  AUTH_REQUIRED: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 407 },
  AUTH_FAILED: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 407 },
  NOT_ALLOWED: { socks5: 0x02, socks4: SOCKS4_FAILED, http: 403 },
  RULE_REJECT: { socks5: 0x02, socks4: SOCKS4_FAILED, http: 403 },
  DESTINATION_DENIED: { socks5: 0x02, socks4: SOCKS4_FAILED, http: 403 },
  // The target is junction itself (one of its listening addresses), or a request came back with
  // junction's own Via token: refused like a denied destination, as Squid does.
  FORWARDING_LOOP: { socks5: 0x02, socks4: SOCKS4_FAILED, http: 403 },
  CMD_UNSUPPORTED: { socks5: 0x07, socks4: SOCKS4_FAILED, http: 405 },
  ATYP_UNSUPPORTED: { socks5: 0x08, socks4: SOCKS4_FAILED, http: 400 },
  DNS_FAILED: { socks5: 0x04, socks4: SOCKS4_FAILED, http: 502 },
  NET_UNREACHABLE: { socks5: 0x03, socks4: SOCKS4_FAILED, http: 502 },
  HOST_UNREACHABLE: { socks5: 0x04, socks4: SOCKS4_FAILED, http: 502 },
  CONN_REFUSED: { socks5: 0x05, socks4: SOCKS4_FAILED, http: 502 },
  CONNECT_TIMEOUT: { socks5: 0x06, socks4: SOCKS4_FAILED, http: 504 },
  UPSTREAM_FAILED: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 502 },
  UPSTREAM_AUTH_FAILED: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 502 },
  // An upstream proxy refused by its own rules, or reported a timeout: see UPSTREAM_* below.
  UPSTREAM_REFUSED: { socks5: 0x02, socks4: SOCKS4_FAILED, http: 502 },
  UPSTREAM_TIMEOUT: { socks5: 0x06, socks4: SOCKS4_FAILED, http: 504 },
  HANDSHAKE_TIMEOUT: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 408 },
  IDLE_TIMEOUT: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 504 },
  CLIENT_CLOSED: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 400 },
  SHUTDOWN: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 503 },
  CLOSED_BY_ADMIN: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 503 },
  LIMIT: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 503 },
  // The user has limits.max_sessions_per_user sessions under way: refused by policy (0x02), and
  // told to come back later (429, RFC 6585 §4) rather than that junction is down.
  USER_LIMIT: { socks5: 0x02, socks4: SOCKS4_FAILED, http: 429 },
  INTERNAL: { socks5: 0x01, socks4: SOCKS4_FAILED, http: 500 },
};

/**
 * An upstream HTTP proxy's non-2xx answer (to CONNECT, or a 407 to a forwarded request); any
 * status not listed is UPSTREAM_FAILED. The upstream's status is always in the message. A 401
 * to CONNECT can only be the proxy's (tinyproxy refuses credentials so).
 */
export const UPSTREAM_HTTP_STATUS: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [407, 'UPSTREAM_AUTH_FAILED'],
  [401, 'UPSTREAM_AUTH_FAILED'],
  [403, 'UPSTREAM_REFUSED'],
  [504, 'UPSTREAM_TIMEOUT'],
]);

/**
 * An upstream SOCKS5 REP (RFC 1928 §6). Its HTTP status comes from the code; a SOCKS5 client
 * gets the REP itself (`upstreamReply`), unchanged. Unassigned REPs are UPSTREAM_FAILED.
 */
export const UPSTREAM_SOCKS5_REP: ReadonlyMap<number, ErrorCode> = new Map<number, ErrorCode>([
  [0x01, 'UPSTREAM_FAILED'],
  [0x02, 'UPSTREAM_REFUSED'],
  [0x03, 'NET_UNREACHABLE'],
  [0x04, 'HOST_UNREACHABLE'],
  [0x05, 'CONN_REFUSED'],
  [0x06, 'UPSTREAM_TIMEOUT'],
  [0x07, 'UPSTREAM_FAILED'],
  [0x08, 'UPSTREAM_FAILED'],
]);

/**
 * Any thrown value as a ProxyError: the value itself when it is one, otherwise `fallback`. The
 * foreign error is never wrapped or kept as `cause`: its fields may hold credentials.
 */
export function toProxyError(err: unknown, fallback: ProxyError): ProxyError {
  return err instanceof ProxyError ? err : fallback;
}

export function socks5Reply(err: ProxyError): number {
  return err.upstreamReply ?? REPLIES[err.code].socks5;
}

export function httpStatus(err: ProxyError): number {
  return REPLIES[err.code].http;
}

const ERRNO_CODES: Readonly<Record<string, ErrorCode>> = {
  ECONNREFUSED: 'CONN_REFUSED',
  ENOTFOUND: 'DNS_FAILED',
  EAI_AGAIN: 'DNS_FAILED',
  EAI_FAIL: 'DNS_FAILED',
  EAI_NODATA: 'DNS_FAILED',
  EAI_NONAME: 'DNS_FAILED',
  ENETUNREACH: 'NET_UNREACHABLE',
  ENETDOWN: 'NET_UNREACHABLE',
  EHOSTUNREACH: 'HOST_UNREACHABLE',
  EHOSTDOWN: 'HOST_UNREACHABLE',
  EADDRNOTAVAIL: 'HOST_UNREACHABLE',
  ETIMEDOUT: 'CONNECT_TIMEOUT',
  ECONNRESET: 'UPSTREAM_FAILED',
  EPIPE: 'UPSTREAM_FAILED',
};

/**
 * Translates an error from a dial (errno, abort) into a ProxyError. The original is not kept as
 * `cause`: foreign errors can carry credentials (the socks client's does) and loggers print causes.
 */
export function fromDialError(err: unknown, what: string): ProxyError {
  if (err instanceof ProxyError) return err;
  const errno = errorCode(err);
  if (errno === 'ABORT_ERR' || (err instanceof Error && err.name === 'TimeoutError')) {
    return new ProxyError('CONNECT_TIMEOUT', `${what}: connect timed out`);
  }
  if (errno === undefined) return new ProxyError('UPSTREAM_FAILED', `${what}: connect failed`);
  const code = ERRNO_CODES[errno] ?? 'UPSTREAM_FAILED';
  const reason = code === 'DNS_FAILED' ? 'name not resolved' : errno;
  return new ProxyError(code, `${what}: ${reason}`);
}

export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

/** A failure of the far end as a ProxyError that names it, never its address or credentials. */
export function upstreamError(
  err: unknown,
  what: string,
  midResponse: boolean,
  who = 'origin',
): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = errorCode(err);
  if (code?.startsWith('HPE_')) {
    return new ProxyError('UPSTREAM_FAILED', `${what}: invalid response from ${who} (${code})`);
  }
  const when = midResponse ? 'broke off mid-response' : 'closed before answering';
  return new ProxyError('UPSTREAM_FAILED', `${what}: ${who} ${when} (${code ?? 'no code'})`);
}
