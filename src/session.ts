import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Limits, RuleConfig } from './config/schema.js';
import { ProxyError, toProxyError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Connected, DialPurpose, Outbound } from './outbound/types.js';
import {
  sendPlainRequest,
  type PlainRequest,
  type PlainResponse,
} from './outbound/plain-request.js';
import { relay as relayStreams, type RelayRate } from './relay.js';
import type { RouteDecision, Router } from './route/types.js';
import type { SessionInfo } from './session-info.js';
import { createSessionLimiter, type RatePlan, type SessionLimiter } from './session-limits.js';
import { formatTarget } from './target.js';

export type { SessionInfo, Protocol } from './session-info.js';

/** What one configuration generation offers to new sessions; a reload swaps it whole. */
export interface Runtime {
  readonly router: Router;
  /** The rules as configured, for what is generated from them (the PAC file). */
  readonly rules: readonly RuleConfig[];
  readonly outbounds: ReadonlyMap<string, Outbound>;
  readonly limits: Limits;
  /** The rates and the per-user cap for new sessions (session-limits.ts). */
  readonly rates: RatePlan;
  readonly accessLog: boolean;
  /** Shared by every generation: counters survive reloads. */
  readonly metrics: Metrics;
  /** Shared by every generation: the sessions under way, and who is told of each that ends. */
  readonly sessions: SessionRegistry;
}

/** The access-log fields of one finished session. */
export type SessionRecord = Readonly<Record<string, unknown>> & {
  readonly sid: string;
  readonly result: string;
};

/** A session under way, as the admin endpoint lists it (GET /sessions) and ends it (DELETE). */
export interface LiveSession {
  readonly info: SessionInfo;
  /** When it started (ms since the epoch). */
  readonly started: number;
  readonly outbound: string | undefined;
  /** Bytes from and to the client so far (its handshake included). */
  bytes(): { readonly up: number; readonly down: number };
  /** Ends it now: both sides are closed, and its access line says `reason`. */
  close(reason: ProxyError): void;
}

export interface SessionRegistry {
  /** Who is told of each session that ends (a library user), if anyone. */
  observer: ((record: SessionRecord) => void) | undefined;
  /** Kept only where something lists them (the admin endpoint): otherwise no session pays for it. */
  readonly live: Map<string, LiveSession> | undefined;
  /** Sessions per user and the rate buckets, shared by the sessions of every generation. */
  readonly limiter: SessionLimiter;
}

export function createSessionRegistry(trackLive = false): SessionRegistry {
  return {
    observer: undefined,
    live: trackLive ? new Map() : undefined,
    limiter: createSessionLimiter(),
  };
}

export interface SessionContext {
  /** The generation current when the session starts; it keeps it to the end. */
  readonly runtime: Runtime;
  /** The inbound's logger (bound to the inbound's name, not to a client). */
  readonly log: Logger;
}

export interface Finish {
  readonly up: number;
  readonly down: number;
  readonly error: ProxyError | undefined;
  /** More fields for the access-log line (a UDP association's datagram counts). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/**
 * One client request from handshake to the access-log line. The inbound parses and replies;
 * the session routes, dials, relays and logs, exactly once however it ends.
 */
export interface Session {
  readonly info: SessionInfo;
  readonly log: Logger;
  readonly limits: Limits;
  /** The buckets its bytes are charged to each way; undefined when no rate applies. */
  readonly rate: RelayRate | undefined;
  /**
   * Why the session may not go on (its user has max_sessions_per_user sessions already): the
   * inbound answers with it. connect() and request() reject with it too.
   */
  readonly refusal: ProxyError | undefined;
  /**
   * Routes and dials. Rejects only with ProxyError, so the inbound can answer in its protocol.
   * `purpose` 'http': the stream will carry plain http:// requests (see DialPurpose). `via`:
   * the Via list for an upstream HTTP proxy's CONNECT (see DialContext.via).
   */
  connect(purpose?: DialPurpose, via?: readonly string[]): Promise<Connected>;
  /**
   * Routes and sends one plain http:// request to the session's target, on connections the
   * outbound gives for them (each dial bounded by the connect timeout); resolves with the
   * response head. Rejects only with ProxyError.
   */
  request(request: PlainRequest): Promise<PlainResponse>;
  /**
   * Starts relaying; when both directions have ended it releases both streams and logs. Returns
   * at once, so that no caller's frame or promise lives as long as the tunnel.
   */
  relay(client: Socket, upstream: Duplex): void;
  /** Ends a session whose bytes were moved by the inbound itself (HTTP forwarding). */
  finish(result: Finish): void;
  /** Ends a session that never relayed. */
  fail(err: ProxyError): void;
}

export function startSession(context: SessionContext, info: SessionInfo, client: Duplex): Session {
  const { runtime } = context;
  const started = performance.now();
  const clientAddress = `${info.source.ip}:${info.source.port}`;
  // Created on first use: most sessions never log anything but their access line, and a pino
  // child per session is a measurable share of a short session's cost.
  let sessionLog: Logger | undefined;
  const log = (): Logger =>
    (sessionLog ??= context.log.child({ sid: info.id, client: clientAddress }));
  let decision: RouteDecision | undefined;
  let connectSeconds: number | undefined;
  let ended = false;
  const admitted = runtime.sessions.limiter.admit(info.inbound, info.user, runtime.rates);
  const admission = admitted instanceof ProxyError ? undefined : admitted;
  const refusal = admitted instanceof ProxyError ? admitted : undefined;
  if (refusal) log().warn({ user: info.user, reason: refusal.message }, 'session refused');

  const end = ({ up, down, error, extra }: Finish): void => {
    if (ended) return;
    ended = true;
    admission?.release();
    const result = error ? error.code : 'ok';
    runtime.metrics.sessionEnded({
      inbound: info.inbound,
      outbound: decision?.outbound,
      result,
      up,
      down,
      connectSeconds,
    });
    runtime.sessions.live?.delete(info.id);
    const observer = runtime.sessions.observer;
    if (!runtime.accessLog && observer === undefined) return;
    const line = {
      sid: info.id,
      client: clientAddress,
      protocol: info.protocol,
      user: info.user,
      target: formatTarget(info.target),
      rule: decision?.rule?.index,
      outbound: decision?.outbound,
      up,
      down,
      ms: Math.round(performance.now() - started),
      result,
      error: error?.message,
      ...extra,
    };
    if (runtime.accessLog) context.log.info(line, 'session');
    if (observer === undefined) return;
    try {
      observer(line);
    } catch (err) {
      // The observer is the embedding program's: its failure is logged, never the session's.
      context.log.error({ err }, 'session observer failed');
    }
  };

  const counted = client as Duplex & { bytesRead?: number; bytesWritten?: number };
  runtime.sessions.live?.set(info.id, {
    info,
    started: Date.now(),
    get outbound() {
      return decision?.outbound;
    },
    bytes: () => ({ up: counted.bytesRead ?? 0, down: counted.bytesWritten ?? 0 }),
    close: (reason) => {
      client.destroy(reason);
    },
  });

  const session: Session = {
    info,
    get log() {
      return log();
    },
    limits: runtime.limits,
    rate: admission?.rate,
    refusal,
    async connect(purpose = 'tunnel', via) {
      if (refusal) throw refusal;
      const controller = new AbortController();
      const onClientGone = (): void => {
        controller.abort(
          new ProxyError('CLIENT_CLOSED', 'client closed before the connection was made'),
        );
      };
      client.on('close', onClientGone);
      // A plain timer rather than AbortSignal.timeout: it is cleared as soon as the dial is done,
      // so nothing fires into a connected stream later.
      const deadline = Date.now() + runtime.limits.connect_timeout;
      const timer = setTimeout(() => {
        controller.abort(new ProxyError('CONNECT_TIMEOUT', 'connect timed out'));
      }, runtime.limits.connect_timeout);
      try {
        const connectStarted = performance.now();
        decision = await runtime.router.decide(info, controller.signal);
        const outbound = runtime.outbounds.get(decision.outbound);
        if (!outbound)
          throw new ProxyError('INTERNAL', `outbound "${decision.outbound}" is missing`);
        const connected = await outbound.dial(info.target, {
          signal: controller.signal,
          purpose,
          deadline,
          client: info.source,
          ...(via === undefined ? {} : { via }),
          get log() {
            return log();
          },
        });
        connectSeconds = (performance.now() - connectStarted) / 1000;
        return connected;
      } catch (err) {
        const error = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
        // Outbounds reject only with ProxyError: anything else is a bug in junction, said loudly.
        if (error !== err) log().error({ err }, 'unexpected error while connecting');
        throw error;
      } finally {
        clearTimeout(timer);
        client.off('close', onClientGone);
      }
    },
    request(request) {
      return sendPlainRequest(() => session.connect('http'), request, log());
    },
    relay(clientSocket, upstream) {
      relayStreams(clientSocket, upstream, runtime.limits.idle_timeout, session.rate, end);
    },
    finish: end,
    fail(err) {
      end({ up: 0, down: 0, error: err });
    },
  };
  return session;
}
