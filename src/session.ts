import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Limits, RuleConfig } from './config/schema.js';
import { ProxyError, toProxyError } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { DialAbort, withDialAbort } from './outbound/dial-abort.js';
import type { Connected, DialContext, DialPurpose, Outbound } from './outbound/types.js';
import {
  sendPlainRequest,
  type PlainRequest,
  type PlainResponse,
} from './outbound/plain-request.js';
import { relay as relayStreams, type RelayRate } from './relay.js';
import type { RouteDecision, Router } from './route/types.js';
import type { SessionInfo } from './session-info.js';
import {
  createSessionLimiter,
  type Admission,
  type RatePlan,
  type SessionLimiter,
} from './session-limits.js';
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
  return new RunningSession(context, info, client);
}

/**
 * A class rather than an object of closures: a tunnel may last hours, and its session's methods
 * then live once on the prototype instead of as a closure each per session.
 */
class RunningSession implements Session {
  readonly info: SessionInfo;
  readonly limits: Limits;
  readonly rate: RelayRate | undefined;
  readonly refusal: ProxyError | undefined;
  private readonly context: SessionContext;
  private readonly client: Duplex;
  private readonly started = performance.now();
  private readonly clientAddress: string;
  private readonly admission: Admission | undefined;
  /**
   * Created on first use: most sessions never log anything but their access line, and a pino
   * child per session is a measurable share of a short session's cost.
   */
  private sessionLog: Logger | undefined;
  private decision: RouteDecision | undefined;
  private connectSeconds: number | undefined;
  private ended = false;

  constructor(context: SessionContext, info: SessionInfo, client: Duplex) {
    const { runtime } = context;
    this.context = context;
    this.info = info;
    this.client = client;
    this.limits = runtime.limits;
    this.clientAddress = `${info.source.ip}:${info.source.port}`;
    const admitted = runtime.sessions.limiter.admit(info.inbound, info.user, runtime.rates);
    this.admission = admitted instanceof ProxyError ? undefined : admitted;
    this.refusal = admitted instanceof ProxyError ? admitted : undefined;
    this.rate = this.admission?.rate;
    if (this.refusal) {
      this.log.warn({ user: info.user, reason: this.refusal.message }, 'session refused');
    }
    runtime.sessions.live?.set(info.id, liveEntry(this, client));
  }

  get log(): Logger {
    return (this.sessionLog ??= this.context.log.child({
      sid: this.info.id,
      client: this.clientAddress,
    }));
  }

  /** The outbound the rules chose, once they have. */
  get outbound(): string | undefined {
    return this.decision?.outbound;
  }

  async connect(purpose: DialPurpose = 'tunnel', via?: readonly string[]): Promise<Connected> {
    if (this.refusal) throw this.refusal;
    const { runtime } = this.context;
    const { info, client } = this;
    const abort = new DialAbort();
    const onClientGone = (): void => {
      abort.abort(new ProxyError('CLIENT_CLOSED', 'client closed before the connection was made'));
    };
    client.on('close', onClientGone);
    // A plain timer rather than AbortSignal.timeout: it is cleared as soon as the dial is done,
    // so nothing fires into a connected stream later.
    const deadline = Date.now() + runtime.limits.connect_timeout;
    const timer = setTimeout(() => {
      abort.abort(new ProxyError('CONNECT_TIMEOUT', 'connect timed out'));
    }, runtime.limits.connect_timeout);
    try {
      const connectStarted = performance.now();
      const decision = await runtime.router.decide(info, abort);
      this.decision = decision;
      const outbound = runtime.outbounds.get(decision.outbound);
      if (!outbound) throw new ProxyError('INTERNAL', `outbound "${decision.outbound}" is missing`);
      // eslint-disable-next-line @typescript-eslint/no-this-alias -- the dial's lazy logger
      const session = this;
      const context: DialContext = {
        get signal() {
          return abort.signal;
        },
        purpose,
        deadline,
        client: info.source,
        ...(via === undefined ? {} : { via }),
        get log() {
          return session.log;
        },
      };
      const connected = await outbound.dial(info.target, withDialAbort(context, abort));
      this.connectSeconds = (performance.now() - connectStarted) / 1000;
      return connected;
    } catch (err) {
      const error = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
      // Outbounds reject only with ProxyError: anything else is a bug in junction, said loudly.
      if (error !== err) this.log.error({ err }, 'unexpected error while connecting');
      throw error;
    } finally {
      clearTimeout(timer);
      client.off('close', onClientGone);
    }
  }

  request(request: PlainRequest): Promise<PlainResponse> {
    return sendPlainRequest(() => this.connect('http'), request, this.log);
  }

  relay(clientSocket: Socket, upstream: Duplex): void {
    relayStreams(clientSocket, upstream, this.limits.idle_timeout, this.rate, this);
  }

  fail(err: ProxyError): void {
    this.finish({ up: 0, down: 0, error: err });
  }

  finish({ up, down, error, extra }: Finish): void {
    if (this.ended) return;
    this.ended = true;
    const { runtime } = this.context;
    const { info, decision } = this;
    this.admission?.release();
    const result = error ? error.code : 'ok';
    runtime.metrics.sessionEnded({
      inbound: info.inbound,
      outbound: decision?.outbound,
      result,
      up,
      down,
      connectSeconds: this.connectSeconds,
    });
    runtime.sessions.live?.delete(info.id);
    const observer = runtime.sessions.observer;
    if (!runtime.accessLog && observer === undefined) return;
    const line = {
      sid: info.id,
      client: this.clientAddress,
      protocol: info.protocol,
      user: info.user,
      target: formatTarget(info.target),
      rule: decision?.rule?.index,
      outbound: decision?.outbound,
      up,
      down,
      ms: Math.round(performance.now() - this.started),
      result,
      error: error?.message,
      ...extra,
    };
    if (runtime.accessLog) this.context.log.info(line, 'session');
    if (observer === undefined) return;
    try {
      observer(line);
    } catch (err) {
      // The observer is the embedding program's: its failure is logged, never the session's.
      this.context.log.error({ err }, 'session observer failed');
    }
  }
}

/** The session as GET /sessions lists it and DELETE /sessions/<id> ends it. */
function liveEntry(session: RunningSession, client: Duplex): LiveSession {
  const counted = client as Duplex & { bytesRead?: number; bytesWritten?: number };
  return {
    info: session.info,
    started: Date.now(),
    get outbound() {
      return session.outbound;
    },
    bytes: () => ({ up: counted.bytesRead ?? 0, down: counted.bytesWritten ?? 0 }),
    close: (reason) => {
      client.destroy(reason);
    },
  };
}
