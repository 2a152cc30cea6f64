// RFC 9112 §3.2 (request-target forms), §9.3 (persistence): one request and its response on a
// connection undici writes and parses (http-connection.ts), the bodies streamed with
// backpressure. A request whose client waits for a 100 goes through node:http instead
// (http-link.ts).
import { errors, type Dispatcher } from 'undici';
import { errorCode, ProxyError, upstreamError } from '../errors.js';
import { formatTarget } from '../target.js';
import type { HttpConnection } from './http-connection.js';
import type { BodySink, PlainRequest, PlainResponse } from './plain-request.js';

export interface Wire {
  /** The request-target: origin-form for the origin, absolute-form for a proxy. */
  readonly requestTarget: string;
  /** Sent to an upstream proxy only. */
  readonly authorization: string | undefined;
  /** How errors name the far end: `origin` or `upstream proxy "name"`. */
  readonly peer: string;
  /**
   * Takes the connection back after a complete exchange that left it reusable; without it the
   * connection is closed after one exchange.
   */
  readonly keep: ((conn: HttpConnection) => void) | undefined;
}

export type Exchanged =
  | { readonly response: PlainResponse; readonly error?: undefined }
  | {
      readonly response?: undefined;
      readonly error: ProxyError;
      /**
       * The connection failed by itself before any answer (not the client leaving, not idle,
       * not an answer that could not be parsed): on a reused connection, the request may go
       * again.
       */
      readonly stale: boolean;
    };

/** Sends `request` on `conn` and resolves with the response head, or with why there is none. */
export function exchange(
  conn: HttpConnection,
  request: PlainRequest,
  wire: Wire,
): Promise<Exchanged> {
  return new Promise((resolve) => {
    new UndiciExchange(conn, request, wire, resolve).start();
  });
}

/** Answers that are not HTTP, whatever the connection does next: never sent again. */
const GARBLED = new Set(['UND_ERR_HEADERS_OVERFLOW']);
/**
 * undici's parser errors carry llhttp's code only sometimes (7.x looks the number up in a
 * table keyed by name): a code of their own then, in llhttp's namespace as node:http's are.
 */
const PARSER_CODE = 'HPE_INVALID';
/** Requests undici refuses to write (a field or target node:http's parser let through). */
const UNSENDABLE = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/**
 * Body parsed before the inbound asks for it (a small response arrives whole with its head) is
 * held up to this much; beyond it undici's parser waits.
 */
const EARLY_LIMIT = 64 * 1024;

/**
 * One exchange, as undici's handler (the callback style: the cheapest it has) and as the
 * response handed to the inbound: a single object per request.
 */
class UndiciExchange implements Dispatcher.DispatchHandler, PlainResponse {
  status = 0;
  statusText = '';
  rawHeaders: string[] = [];
  private up = 0;
  /** Why the exchange was cut (the client left, no traffic): decided before the streams fail. */
  private cut: ProxyError | undefined;
  private answered = false;
  private resumeParser: (() => void) | undefined;
  private sink: BodySink | undefined;
  private early: Buffer[] | undefined;
  private earlyBytes = 0;
  private ended = false;
  private broken: ProxyError | undefined;
  private delivered: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private released = false;

  private readonly conn: HttpConnection;
  private readonly request: PlainRequest;
  private readonly wire: Wire;
  private readonly settle: (outcome: Exchanged) => void;

  constructor(
    conn: HttpConnection,
    request: PlainRequest,
    wire: Wire,
    settle: (outcome: Exchanged) => void,
  ) {
    this.conn = conn;
    this.request = request;
    this.wire = wire;
    this.settle = settle;
  }

  get peer(): string {
    return this.wire.peer;
  }

  start(): void {
    const { request, wire, conn } = this;
    const { client } = request;
    if (client.gone) {
      this.cut = client.gone;
      conn.close();
      this.settle({ error: client.gone, stale: false });
      return;
    }
    client.onGone = this.onClientGone;
    conn.watchIdle(request.idleMs, this.onIdle);
    conn.dispatcher().dispatch(
      {
        method: request.method,
        path: wire.requestTarget,
        headers:
          wire.authorization === undefined
            ? (request.headers as string[])
            : [...request.headers, 'Proxy-Authorization', wire.authorization],
        body: request.body ?? null,
        // A connection that goes back to no pool says so; one that does is kept after a HEAD too.
        reset: wire.keep === undefined,
      },
      this,
    );
  }

  private readonly onClientGone = (reason: ProxyError): void => {
    this.cut ??= reason;
    this.conn.close();
  };

  /** No bytes either way for idleMs; backpressure stalls the upstream when the client stops reading. */
  private readonly onIdle = (): void => {
    this.cut ??= new ProxyError('IDLE_TIMEOUT', `no traffic for ${this.request.idleMs}ms`);
    this.conn.close();
  };

  onConnect(): void {
    // Cut short through the connection itself (close()), which undici also watches.
  }

  onBodySent(chunk: Buffer | number): void {
    this.up += typeof chunk === 'number' ? chunk : chunk.length;
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx other than 100 (Early Hints): informational, not passed on.
    if (status < 200) return true;
    this.status = status;
    this.statusText = statusText;
    const headers = new Array<string>(rawHeaders.length);
    for (let i = 0; i < rawHeaders.length; i++) {
      headers[i] = (rawHeaders[i] as Buffer).toString('latin1');
    }
    this.rawHeaders = headers;
    this.resumeParser = resume;
    this.answered = true;
    this.settle({ response: this });
    return true;
  }

  onData(chunk: Buffer): boolean {
    const { sink } = this;
    if (sink) return sink.write(chunk);
    // Before the inbound has written the head: held until deliver.
    (this.early ??= []).push(chunk);
    this.earlyBytes += chunk.length;
    return this.earlyBytes < EARLY_LIMIT;
  }

  onComplete(): void {
    this.ended = true;
    this.delivered?.resolve();
  }

  onError(err: Error): void {
    if (!this.answered) {
      this.release(false);
      this.settle(this.failedBeforeAnswer(err));
      return;
    }
    this.broken = this.translate(err, true);
    this.delivered?.reject(this.broken);
  }

  private failedBeforeAnswer(err: Error): Exchanged {
    if (this.cut) return { error: this.cut, stale: false };
    const code = errorCode(err) ?? '';
    if (UNSENDABLE.has(code)) {
      const what = formatTarget(this.request.target);
      return {
        error: new ProxyError('BAD_REQUEST', `${what}: request cannot be forwarded`),
        stale: false,
      };
    }
    const garbled =
      err instanceof errors.HTTPParserError || code.startsWith('HPE_') || GARBLED.has(code);
    return { error: this.translate(err, false), stale: !garbled && !(err instanceof ProxyError) };
  }

  private translate(err: Error, midResponse: boolean): ProxyError {
    const what = formatTarget(this.request.target);
    const parser = err instanceof errors.HTTPParserError;
    const named = parser ? { code: errorCode(err) ?? PARSER_CODE } : err;
    return upstreamError(named, what, midResponse, this.wire.peer);
  }

  sent(): number {
    return this.up;
  }

  failure(): ProxyError | undefined {
    return this.cut;
  }

  deliver(sink: BodySink): Promise<void> {
    this.sink = sink;
    let flowing = true;
    const { early } = this;
    if (early) {
      this.early = undefined;
      // Already read: it all goes, and the sink's backpressure holds back what follows.
      for (const chunk of early) flowing = sink.write(chunk) && flowing;
    }
    if (this.ended) return Promise.resolve();
    if (this.broken) return Promise.reject(this.broken);
    return new Promise<void>((resolve, reject) => {
      this.delivered = { resolve, reject };
      if (flowing) this.resume();
    });
  }

  resume(): void {
    this.resumeParser?.();
  }

  release(complete: boolean): void {
    if (this.released) return;
    this.released = true;
    const { client } = this.request;
    client.onGone = undefined;
    // The connection may serve another request: nothing of this one stays on it.
    this.conn.unwatchIdle();
    if (complete && this.wire.keep && this.conn.usable) this.wire.keep(this.conn);
    // Also ends an upload the origin did not wait for.
    else this.conn.close();
  }
}
