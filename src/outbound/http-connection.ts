// RFC 9112 §9.3 (persistence): one connection that carries plain http:// requests, to the
// origin or to an upstream HTTP proxy.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Client, type buildConnector } from 'undici';

/**
 * A connection the outbound dialled (TCP, a tunnel through a chain, TLS to an https:// proxy),
 * and the undici client that writes requests on it and parses the answers, made at its first
 * request. The stream is handed to undici exactly once: undici never dials, and once the
 * stream is closed any request on it fails at once (and may go again on another connection).
 */
export class HttpConnection {
  readonly stream: Duplex;
  /** The target it carries requests for: the pool files it under this. */
  readonly key: string;
  /** The pool holding it while it is idle, told when it closes there. */
  idleIn: IdleHolder | undefined;
  /**
   * An upstream proxy authenticated the connection itself (NTLM, Negotiate), not each request:
   * a request that would need another connection stays on this one (http-link.ts).
   */
  authenticated = false;
  private client: Client | undefined;
  private idleMs = 0;
  /** The exchange under way, told when the stream has been quiet for `idleMs`. */
  private onQuiet: (() => void) | undefined;
  /** When it began (Date.now()): the socket's timer may have been running before. */
  private watchedSince = 0;

  constructor(stream: Duplex, key = '') {
    this.stream = stream;
    this.key = key;
    stream.on('close', this.onClose);
    stream.on('timeout', this.onTimeout);
    // The exchange under way learns of a failure from undici or node:http; an error when none
    // listens (close() after undici let go of the stream) must not reach the process.
    stream.on('error', ignoreError);
  }

  /** undici has taken the stream over: nothing else may read or write it any more. */
  get adopted(): boolean {
    return this.client !== undefined;
  }

  /** Still open in both directions: it can carry another request. */
  get usable(): boolean {
    const { stream } = this;
    return !stream.destroyed && stream.writable && !stream.readableEnded;
  }

  /** The undici client on this connection; made, and given the stream, on first use. */
  dispatcher(): Client {
    this.client ??= new Client(PLACEHOLDER_ORIGIN, {
      connect: handOver(this.stream),
      pipelining: 1,
      // junction has its own: idle_timeout per exchange (watchIdle).
      headersTimeout: 0,
      bodyTimeout: 0,
      // undici closes the connection after this long unused (less when the far end says it
      // keeps connections for less): the pool's idle limit.
      keepAliveTimeout: POOL_IDLE_MS,
      keepAliveMaxTimeout: POOL_IDLE_MS,
      allowH2: false,
    });
    return this.client;
  }

  /**
   * Calls `onQuiet` when no byte went either way for `ms` (0: never) until `unwatchIdle`. The
   * socket's own timer is set once per connection and refreshed by its reads and writes:
   * nothing is armed per request.
   */
  watchIdle(ms: number, onQuiet: () => void): void {
    this.onQuiet = onQuiet;
    this.watchedSince = Date.now();
    if (ms === this.idleMs) return;
    this.idleMs = ms;
    (this.stream as Timed).setTimeout?.(ms);
  }

  unwatchIdle(): void {
    this.onQuiet = undefined;
  }

  close(): void {
    if (this.client === undefined) {
      this.stream.destroy();
      return;
    }
    // With a reason undici records it before the close: closed without one while it holds a
    // paused response that ends with the connection, it would fail an assertion of its own.
    this.stream.destroy(Object.assign(new Error('connection closed'), { code: 'ECONNABORTED' }));
  }

  private readonly onClose = (): void => {
    this.idleIn?.drop(this);
  };

  private readonly onTimeout = (): void => {
    // Quiet while idle in a pool: the pool's limit is shorter, and undici's keep-alive ends it.
    // Quiet since before the exchange began: its first write arms the timer again.
    if (Date.now() - this.watchedSince < this.idleMs) return;
    this.onQuiet?.();
  };
}

function ignoreError(): void {
  // See the constructor.
}

/** Where an idle connection waits: it leaves when it closes. */
export interface IdleHolder {
  drop(conn: HttpConnection): void;
}

/** How long an idle connection is kept: below the usual keep-alive timeouts of servers. */
export const POOL_IDLE_MS = 4_000;

type Timed = Duplex & { setTimeout?: (ms: number) => unknown };

/**
 * undici's client needs an origin, for a Host field that is never sent (every request carries
 * its own) and for its messages.
 */
const PLACEHOLDER_ORIGIN = 'http://upstream.invalid';

/**
 * The stream the first time undici connects; a failure ever after. The callback is called on a
 * later tick: undici does not write a request it is handed a connection for synchronously.
 */
export function handOver(stream: Duplex): buildConnector.connector {
  let handed = false;
  return (_options, callback) => {
    if (handed) {
      queueMicrotask(() => {
        callback(Object.assign(new Error('connection closed'), { code: 'ECONNRESET' }), null);
      });
      return;
    }
    handed = true;
    queueMicrotask(() => {
      // undici uses what every stream has (read, write, cork, destroy, events), and socket
      // methods only where they exist.
      // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
      callback(null, stream as Socket);
    });
  };
}
