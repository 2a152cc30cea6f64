// RFC 9110 §7.6 (forwarding), §9.2.2 (idempotent methods): one plain http:// request sent
// through an outbound. The inbound hands the request over and gets a response back; how it
// travels (origin-form to the origin, absolute-form to an upstream proxy with that proxy's
// credentials, on a kept-alive connection or a new one) is the outbound's business.
import type { Readable } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Target } from '../target.js';
import { HttpConnection } from './http-connection.js';
import { createOriginLink } from './http-link.js';
import type { ChallengeAnswerer } from './proxy-auth/answerer.js';
import type { Connected } from './types.js';

export interface PlainRequest {
  readonly method: string;
  readonly target: Target;
  /** As the client wrote it (`host` or `host:port`): the absolute-form's authority. */
  readonly authority: string;
  /** Origin-form: the path and query. */
  readonly path: string;
  /**
   * The end-to-end fields to send, as raw name/value pairs, Host and Via included, and
   * Content-Length when the client sent one. A body without it goes chunked.
   */
  readonly headers: readonly string[];
  /** Undefined when the request has no body (RFC 9112 §6.3): it can then be sent again. */
  readonly body: Readable | undefined;
  /** The client sent `Expect: 100-continue`: called when the origin answers 100. */
  readonly onContinue: (() => void) | undefined;
  /** Says when the client is gone: the upstream connection is then closed at once. */
  readonly client: ClientPresence;
  /** No bytes either way for this long ends the exchange (IDLE_TIMEOUT). 0: no limit. */
  readonly idleMs: number;
}

/**
 * The client of one request, as the outbound sees it: an object per request and a callback
 * rather than an AbortSignal, whose listeners cost more than the rest of a kept-alive request.
 */
export interface ClientPresence {
  /**
   * Why the client is gone (it left, or was closed: shutdown, admin), once it is; reported as
   * the exchange's failure.
   */
  readonly gone: ProxyError | undefined;
  /** Set by the exchange while it runs; called once when the client goes. */
  onGone: ((reason: ProxyError) => void) | undefined;
}

/** Where a response body goes: the client's connection, or nowhere (a refusal read to its end). */
export interface BodySink {
  /** One chunk of the body; false asks for no more until the response's `resume()`. */
  write(chunk: Buffer): boolean;
}

export interface PlainResponse {
  readonly status: number;
  /** The reason phrase, as the far end wrote it. */
  readonly statusText: string;
  /** The fields as raw name/value pairs, with the far end's case and order. */
  readonly rawHeaders: readonly string[];
  /** How errors name the far end: `origin` or `upstream proxy "name"`. */
  readonly peer: string;
  /** Request-body bytes sent. */
  sent(): number;
  /** Why the exchange was cut short (client gone, idle), before what the streams say. */
  failure(): ProxyError | undefined;
  /**
   * Hands the body to `sink`, with backpressure; resolves when it ended, rejects when it broke
   * off. Called once.
   */
  deliver(sink: BodySink): Promise<void>;
  /** More body after the sink said stop. */
  resume(): void;
  /**
   * Called once, after the body was read to its end and delivered (`complete`) or abandoned:
   * the connection goes back to its outbound's pool when both sides allow it, else it is closed.
   */
  release(complete: boolean): void;
}

/** A body read to its end and dropped (a proxy's 407): true when it ended, false when it broke off. */
export function drain(response: PlainResponse): Promise<boolean> {
  return response.deliver(DROP).then(
    () => true,
    () => false,
  );
}

const DROP: BodySink = { write: () => true };

/** What one request carries from one attempt to the next (a new connection, a 407 answered). */
export interface Attempts {
  /** Bodyless and idempotent: may be sent again when a kept-alive connection fails first. */
  readonly retriable: boolean;
  /** An upstream proxy's challenges to this request, answered one after the other. */
  answerer: ChallengeAnswerer | undefined;
  /** The Proxy-Authorization for the next attempt. */
  authorization: string | undefined;
  /** Attempts made so far. */
  count: number;
}

/**
 * How plain requests are written on one connection an outbound gave for them: origin-form to
 * the origin, or absolute-form to an upstream HTTP proxy with its credentials.
 */
export type Retry = 'stale' | 'answered';

export interface HttpLink {
  /**
   * The response, or why the request must go again: 'stale' (a kept-alive connection failed
   * before any answer), 'answered' (an upstream proxy's challenge was answered).
   */
  send(request: PlainRequest, attempts: Attempts): Promise<PlainResponse | Retry>;
}

/**
 * RFC 9110 §9.2.2: the methods whose request can be sent twice with the effect of once. Only
 * these are sent again when a kept-alive connection fails, as Squid does.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A stale kept-alive connection each, and a challenge round or two: a loop beyond this. */
const MAX_ATTEMPTS = 8;

/**
 * Sends `request` on connections from `dial` (the session's dial for plain requests, which
 * routes and bounds each dial with the connect timeout) until a response comes back. Rejects
 * only with ProxyError.
 */
export async function sendPlainRequest(
  dial: () => Promise<Connected>,
  request: PlainRequest,
  log: Logger,
): Promise<PlainResponse> {
  const attempts: Attempts = {
    retriable: request.body === undefined && IDEMPOTENT.has(request.method),
    answerer: undefined,
    authorization: undefined,
    count: 0,
  };
  for (;;) {
    attempts.count++;
    const conn = await dial();
    // A stream that reaches the target itself (a tunnel) carries origin-form requests.
    const link =
      conn.http ??
      createOriginLink(new HttpConnection(conn.stream), {
        reused: false,
        keep: undefined,
        redial: undefined,
      });
    const outcome = await link.send(request, attempts);
    if (typeof outcome !== 'string') return outcome;
    if (outcome === 'stale') log.debug('kept-alive connection was closed; retrying');
    if (attempts.count >= MAX_ATTEMPTS) {
      throw new ProxyError(
        'UPSTREAM_FAILED',
        `${request.authority}: no answer after ${attempts.count} attempts`,
      );
    }
  }
}
