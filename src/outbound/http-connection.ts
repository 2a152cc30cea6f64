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
  private client: Client | undefined;

  constructor(stream: Duplex) {
    this.stream = stream;
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
      // junction has its own: idle_timeout per exchange, the pool's idle limit.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveMaxTimeout: KEEP_ALIVE_MS,
      allowH2: false,
    });
    return this.client;
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
}

/**
 * undici's client needs an origin, for a Host field that is never sent (every request carries
 * its own) and for its messages.
 */
const PLACEHOLDER_ORIGIN = 'http://upstream.invalid';

/** Beyond the pool's own idle limit, which closes the connection first. */
const KEEP_ALIVE_MS = 60_000;

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
