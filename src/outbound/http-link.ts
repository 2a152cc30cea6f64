// RFC 9112 §3.2.1-§3.2.2 (origin-form, absolute-form), RFC 9110 §11.7.1-§11.7.2 (407 and
// Proxy-Authorization): how plain requests go on a connection to the origin or to an upstream
// HTTP proxy, and when they go again.
import type { Duplex } from 'node:stream';
import type { Logger } from '../log.js';
import { drain, exchange, type Exchanged } from './http-exchange.js';
import type { Attempts, HttpLink, PlainRequest, PlainResponse, Retry } from './plain-request.js';
import { ChallengeAnswerer, type ProxyAuth } from './proxy-auth/answerer.js';
import { challengeFields } from './proxy-auth/challenge.js';
import { FIRST_REST_MS } from './proxy-auth/lockout.js';

/** A pooled connection's state: whether it served before, and how to hand it back. */
export interface Reuse {
  readonly reused: boolean;
  /** Files the stream back in its pool; undefined: it is closed after one exchange. */
  readonly keep: (() => void) | undefined;
}

/** Origin-form requests to the origin itself (directly, or through a tunnel). */
export function createOriginLink(stream: Duplex, reuse: Reuse): HttpLink {
  return {
    async send(request, attempts) {
      const outcome = await exchange(stream, request, {
        requestTarget: request.path,
        authorization: undefined,
        peer: 'origin',
        keep: reuse.keep,
      });
      return settle(outcome, reuse, attempts);
    },
  };
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
 */
export function createProxyLink(stream: Duplex, reuse: Reuse, proxy: UpstreamHttpProxy): HttpLink {
  return {
    async send(request, attempts) {
      const uri = `http://${request.authority}${request.path}`;
      const fresh = attempts.answerer === undefined;
      const answerer = (attempts.answerer ??= new ChallengeAnswerer(proxy.auth, proxy.label, {
        method: request.method,
        uri,
      }));
      if (fresh) attempts.authorization = answerer.first();
      const outcome = await exchange(stream, request, {
        requestTarget: uri,
        authorization: attempts.authorization,
        peer: `upstream proxy ${proxy.label}`,
        keep: reuse.keep,
      });
      const response = await settle(outcome, reuse, attempts);
      if (typeof response === 'string') return response;
      if (response.message.statusCode !== 407) {
        answerer.succeeded();
        return response;
      }
      return challenged(response, request, attempts, answerer, proxy);
    },
  };
}

/**
 * A 407: the request goes again with the next answer. Its body is read first, so that the
 * connection can carry the next attempt (a connection-bound scheme needs the same one). A
 * request with a body has been consumed: it cannot be sent again.
 */
async function challenged(
  response: PlainResponse,
  request: PlainRequest,
  attempts: Attempts,
  answerer: ChallengeAnswerer,
  proxy: UpstreamHttpProxy,
): Promise<'answered'> {
  response.release(await drain(response.message));
  try {
    if (request.body !== undefined || attempts.count >= MAX_CHALLENGES) {
      throw answerer.refusal(407, request.authority);
    }
    attempts.authorization = answerer.answer(challengeFields(response.message.rawHeaders));
  } catch (err) {
    if (answerer.firstRefusal) {
      proxy.log.warn(
        { upstream: proxy.label, rest_s: FIRST_REST_MS / 1000 },
        'upstream proxy refused our credentials: they are not sent again for a while, so that the account is not locked out',
      );
    }
    throw err;
  }
  proxy.log.debug(
    { upstream: proxy.label, scheme: answerer.scheme, round: attempts.count },
    'answering the upstream proxy challenge',
  );
  return 'answered';
}

/** The response, or 'stale' for a request that may go again after a reused connection failed. */
function settle(
  outcome: Exchanged,
  reuse: Reuse,
  attempts: Attempts,
): Promise<PlainResponse | Retry> {
  if (outcome.response) return Promise.resolve(outcome.response);
  if (outcome.stale && reuse.reused && attempts.retriable) return Promise.resolve('stale');
  return Promise.reject(outcome.error);
}
