// RFC 9112 §3.2.1-§3.2.2 (origin-form, absolute-form), RFC 9110 §11.7.1-§11.7.2 (407 and
// Proxy-Authorization): how plain requests go on a connection to the origin or to an upstream
// HTTP proxy, and when they go again.
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HttpConnection } from './http-connection.js';
import { exchangeWithNodeHttp } from './http-node-exchange.js';
import { exchange, type Exchanged, type Wire } from './http-exchange.js';
import {
  drain,
  type Attempts,
  type HttpLink,
  type PlainRequest,
  type PlainResponse,
  type Retry,
} from './plain-request.js';
import { ChallengeAnswerer, type ProxyAuth } from './proxy-auth/answerer.js';
import { challengeFields } from './proxy-auth/challenge.js';
import { FIRST_REST_MS } from './proxy-auth/lockout.js';

/** A pooled connection's state: whether it served before, and how to hand it back. */
export interface Reuse {
  readonly reused: boolean;
  /** Files a connection back in its pool; undefined: it is closed after one exchange. */
  readonly keep: ((conn: HttpConnection) => void) | undefined;
  /**
   * Another connection to the same place that undici has not taken over (a pooled one, else a
   * new one), for a request node:http sends when undici has taken this one over; undefined: the
   * request fails instead.
   */
  readonly redial: (() => Promise<HttpConnection>) | undefined;
}

/** Origin-form requests to the origin itself (directly, or through a tunnel). */
export function createOriginLink(conn: HttpConnection, reuse: Reuse): HttpLink {
  return new OriginLink(conn, reuse);
}

class OriginLink implements HttpLink {
  private readonly conn: HttpConnection;
  private readonly reuse: Reuse;

  constructor(conn: HttpConnection, reuse: Reuse) {
    this.conn = conn;
    this.reuse = reuse;
  }

  async send(request: PlainRequest, attempts: Attempts): Promise<PlainResponse | Retry> {
    const { conn, reuse } = this;
    const on = needsOwnConnection(request, conn) ? await redial(request, conn, reuse) : conn;
    const outcome = await send(on, request, {
      requestTarget: request.path,
      authorization: undefined,
      peer: 'origin',
      keep: reuse.keep,
    });
    return settle(outcome, reuse.reused && on === conn, attempts);
  }
}

/**
 * undici for every request but those whose client waits for a 100: node:http passes the
 * origin's 100 on, and undici does not send Expect at all (http-node-exchange.ts).
 */
function send(conn: HttpConnection, request: PlainRequest, wire: Wire): Promise<Exchanged> {
  return byNodeHttp(request)
    ? exchangeWithNodeHttp(conn, request, wire)
    : exchange(conn, request, wire);
}

function byNodeHttp(request: PlainRequest): boolean {
  return request.onContinue !== undefined;
}

/** A request node:http must send, and a connection undici has already taken over. */
function needsOwnConnection(request: PlainRequest, conn: HttpConnection): boolean {
  return conn.adopted && byNodeHttp(request);
}

/** A new connection for the request; `conn` goes back to its pool. */
async function redial(
  request: PlainRequest,
  conn: HttpConnection,
  reuse: Reuse,
): Promise<HttpConnection> {
  const { keep } = reuse;
  if (keep) keep(conn);
  else conn.close();
  if (!reuse.redial) {
    throw new ProxyError('UPSTREAM_FAILED', `${request.authority}: no connection for the request`);
  }
  return reuse.redial();
}

/**
 * The request as undici sends it after junction has said 100 to the client itself: without its
 * Expect field, which undici does not send.
 */
function continuedHere(request: PlainRequest): PlainRequest {
  request.onContinue?.();
  const headers: string[] = [];
  for (let i = 0; i + 1 < request.headers.length; i += 2) {
    const name = request.headers[i] ?? '';
    if (name.toLowerCase() !== 'expect') headers.push(name, request.headers[i + 1] ?? '');
  }
  return { ...request, headers, onContinue: undefined };
}

export interface UpstreamHttpProxy {
  /** The outbound's name, quoted: never its URL. */
  readonly label: string;
  readonly auth: ProxyAuth;
  readonly log: Logger;
}

/** A refused exchange within one request: a scheme's rounds, and a stale nonce. */
const MAX_CHALLENGES = 5;

/**
 * Absolute-form requests to an upstream HTTP proxy, answering its 407s with junction's
 * credentials: the challenge is for junction, not for the client, which could not answer it.
 * An answer goes on the connection that brought the challenge when the proxy keeps it open (a
 * connection-bound scheme, NTLM, must), else on a new one.
 */
export function createProxyLink(
  first: HttpConnection,
  reuse: Reuse,
  proxy: UpstreamHttpProxy,
): HttpLink {
  const pooled = reuse.keep;
  // Between two rounds of a challenge the connection stays with this request, not in the pool.
  let holding = false;
  let held = false;
  const keep =
    pooled &&
    ((conn: HttpConnection): void => {
      if (holding) held = true;
      else pooled(conn);
    });
  /** Lets go of a refusal and says whether its connection can carry the next round. */
  const holdAfter = (response: PlainResponse, complete: boolean): boolean => {
    holding = true;
    held = false;
    response.release(complete);
    holding = false;
    return held;
  };
  return {
    async send(request, attempts) {
      const uri = `http://${request.authority}${request.path}`;
      const fresh = attempts.answerer === undefined;
      const answerer = (attempts.answerer ??= new ChallengeAnswerer(
        proxy.auth,
        proxy.label,
        { method: request.method, uri },
        { keepsConnection: pooled !== undefined },
      ));
      if (fresh) attempts.authorization = answerer.first();
      let conn = first;
      let sending = request;
      if (needsOwnConnection(request, first)) {
        // A new connection would need the handshake again, which a request with a body cannot
        // make: on this one, the client gets its 100 from junction.
        if (first.authenticated) sending = continuedHere(request);
        else conn = await redial(request, first, reuse);
      }
      for (let reused = reuse.reused && conn === first; ; reused = true) {
        const outcome = await send(conn, sending, {
          requestTarget: uri,
          authorization: attempts.authorization,
          peer: `upstream proxy ${proxy.label}`,
          keep,
        });
        const response = settle(outcome, reused, attempts);
        if (typeof response === 'string') return response;
        if (response.status !== 407) {
          answerer.succeeded();
          if (answerer.connectionBound) conn.authenticated = true;
          return response;
        }
        const kept = holdAfter(response, await drain(response));
        try {
          attempts.authorization = await answer(response, request, attempts, answerer, proxy);
        } catch (err) {
          if (kept) conn.close();
          throw err;
        }
        if (!kept) {
          if (answerer.connectionBound) {
            throw new ProxyError(
              'UPSTREAM_FAILED',
              `upstream proxy ${proxy.label} closed the connection during authentication`,
            );
          }
          return 'answered';
        }
        attempts.count++;
      }
    },
  };
}

/**
 * The Proxy-Authorization answering a 407. A request with a body has been consumed: it cannot
 * be sent again.
 */
async function answer(
  response: PlainResponse,
  request: PlainRequest,
  attempts: Attempts,
  answerer: ChallengeAnswerer,
  proxy: UpstreamHttpProxy,
): Promise<string> {
  try {
    if (request.body !== undefined || attempts.count >= MAX_CHALLENGES) {
      throw answerer.refusal(407, request.authority);
    }
    const authorization = await answerer.answer(challengeFields(response.rawHeaders));
    proxy.log.debug(
      { upstream: proxy.label, scheme: answerer.scheme, round: attempts.count },
      'answering the upstream proxy challenge',
    );
    return authorization;
  } catch (err) {
    if (answerer.firstRefusal) {
      proxy.log.warn(
        { upstream: proxy.label, rest_s: FIRST_REST_MS / 1000 },
        'upstream proxy refused our credentials: they are not sent again for a while, so that the account is not locked out',
      );
    }
    throw err;
  }
}

/**
 * The response, or 'stale' for a request that may go again after a reused connection failed;
 * throws the failure otherwise.
 */
function settle(outcome: Exchanged, reused: boolean, attempts: Attempts): PlainResponse | Retry {
  if (outcome.response) return outcome.response;
  if (outcome.stale && reused && attempts.retriable) return 'stale';
  throw outcome.error;
}
