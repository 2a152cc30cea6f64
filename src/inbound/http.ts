// RFC 9112 (HTTP/1.1 messages, parsed by node:http), RFC 9110 §11.7.1 (Proxy-Authenticate) and
// §11.7.2 (Proxy-Authorization) with RFC 7617 Basic: the HTTP proxy inbound.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Authenticator } from '../auth.js';
import { httpStatus, ProxyError } from '../errors.js';
import { startSession, type Protocol, type Session } from '../session.js';
import type { Target } from '../target.js';
import { createVia } from '../via.js';
import {
  errorText,
  parseConnectAuthority,
  replyAndClose,
  statusText,
  tunnel,
} from './http-connect.js';
import { forward, replyError } from './http-forward.js';
import { refuseLoop } from './http-loop.js';
import { asksForPac, servePac } from './http-pac.js';
import { parseAbsoluteForm } from './http-target.js';
import { createTurns } from './http-turns.js';
import { forwardUpgrade } from './http-upgrade.js';
import type { Accepted, ProtocolEnv, ProtocolHandler } from './types.js';

/**
 * Idle time allowed between requests on a kept-alive client connection. Browsers keep idle
 * proxy connections for minutes; 60 s reuses them across page loads without hoarding sockets.
 */
const KEEP_ALIVE_MS = 60_000;
/**
 * How often node:http looks for request heads that are late. The first head of a connection is
 * bounded by the listener's handshake deadline; this bounds each later one on a kept-alive
 * connection (headersTimeout).
 */
const DEADLINE_CHECK_MS = 1_000;
const CHALLENGE = ['Proxy-Authenticate', 'Basic realm="junction"'];
/** node:http parse errors that have a more precise answer than 400. */
const PARSE_ERRORS: ReadonlyMap<string, readonly [number, string]> = new Map([
  ['ERR_HTTP_REQUEST_TIMEOUT', [408, 'request head not received within handshake_timeout']],
  ['HPE_HEADER_OVERFLOW', [431, 'request head too large']],
] as const);

type Refuse = (error: ProxyError) => void;

/**
 * The turn of a request that takes the connection over (CONNECT, Upgrade) is over once it has
 * started: node:http reads no request after it, so nothing waits behind it, and a tunnel that
 * lasts hours keeps no promise of its turn.
 */
const HANDED_OVER: Promise<void> = Promise.resolve();

export function createHttpHandler(env: ProtocolEnv): ProtocolHandler {
  const clients = new WeakMap<Socket, Accepted>();
  // The requests of each connection, served one at a time, and a parse error after them.
  // Sockets already answered for a parse error.
  const turns = createTurns();
  const answered = new WeakSet<Socket>();
  // The last request node:http parsed on each connection: it parses the next only once this
  // one's body is complete, so a body that can still be cut is always this one's.
  const lastParsed = new WeakMap<Socket, IncomingMessage>();
  // This listener's name in Via lists: what it forwards carries it, what comes back with it looped.
  const via = createVia();
  const server = createServer({
    headersTimeout: env.runtime().limits.handshake_timeout,
    requestTimeout: 0, // bodies stream as long as they take; idle_timeout cuts a stalled one
    keepAliveTimeout: KEEP_ALIVE_MS,
    connectionsCheckingInterval: DEADLINE_CHECK_MS,
    // node:http would answer a missing Host with an empty 400 and no trace; badTarget() answers
    // it with a reason and a log line, like every other malformed request.
    requireHostHeader: false,
  });
  // node:http enforces headersTimeout from a check it starts on 'listening'. This server never
  // listens (the inbound's listener feeds it sockets), so the check is started here.
  server.emit('listening');

  /**
   * Every parsed request is one session (one access-log line). The target was parsed by the
   * caller (a bad one is a 400 and a debug line, without a session); then the client is
   * checked (403, 407) and the session handed on.
   */
  const run = (
    req: IncomingMessage,
    protocol: Protocol,
    target: Target,
    refuse: Refuse,
    proceed: (session: Session) => Promise<void>,
  ): void => {
    const client = clientOf(req.socket);
    const authorization = req.headers['proxy-authorization'];
    // The closures below live as long as the session (a tunnel may last hours): they keep neither
    // the request nor, once it has been called, `proceed`, which holds the request.
    let next: typeof proceed | undefined = proceed;
    let session: Session | undefined;
    const start = async (): Promise<void> => {
      // A user name when authenticated, the error to answer with when refused.
      const verdict = !client.allowed
        ? new ProxyError('NOT_ALLOWED', 'client address not allowed')
        : env.auth && (await authenticate(env.auth, authorization));
      const user = typeof verdict === 'string' ? verdict : undefined;
      const info = {
        id: env.nextId(),
        inbound: env.config.name,
        protocol,
        source: client.source,
        user,
        target,
      };
      session = startSession({ runtime: env.runtime(), log: env.log }, info, client.socket);
      const serve = next;
      next = undefined;
      if (!(verdict instanceof ProxyError)) return serve?.(session);
      refuse(verdict);
      session.fail(verdict);
    };
    start().catch((err: unknown) => {
      client.log.error({ err }, 'http: unexpected error');
      client.socket.destroy();
      session?.fail(new ProxyError('INTERNAL', 'internal error'));
    });
  };
  const clientOf = (socket: Socket): Accepted => {
    const client = clients.get(socket);
    if (!client) throw new Error('http inbound: a socket that did not come through handle()');
    return client;
  };
  const challenge = (error: ProxyError): string[] =>
    error.code === 'AUTH_REQUIRED' || error.code === 'AUTH_FAILED' ? CHALLENGE : [];
  const refuseRaw =
    (socket: Socket): Refuse =>
    (error) => {
      replyAndClose(socket, httpStatus(error), errorText(error), challenge(error));
    };
  /** Why a request cannot be served whatever the rules say (400), or undefined. */
  const badTarget = (req: IncomingMessage, reason: string | undefined): string | undefined => {
    const why =
      req.httpVersion === '1.1' && req.headers.host === undefined
        ? 'an HTTP/1.1 request needs a Host field'
        : reason;
    if (why !== undefined) clientOf(req.socket).log.debug({ reason: why }, 'http: bad request');
    return why;
  };
  /** A request that came back with our Via entry is refused before anything is dialled. */
  const unlessLooped =
    (req: IncomingMessage, refuse: Refuse, serve: (session: Session) => Promise<void>) =>
    (session: Session): Promise<void> =>
      refuseLoop(session, req, via, refuse) ?? serve(session);

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    turns.take(req.socket, () => {
      let work = Promise.resolve();
      if (asksForPac(req)) {
        const client = clientOf(req.socket);
        if (client.allowed) servePac(env, env.runtime().rules, req, res);
        else replyError(res, req, new ProxyError('NOT_ALLOWED', 'client address not allowed'));
        return closed(res);
      }
      const at = parseAbsoluteForm(req.url ?? '');
      const bad = badTarget(req, typeof at === 'string' ? at : undefined);
      if (bad !== undefined || typeof at === 'string') {
        replyError(res, req, new ProxyError('BAD_REQUEST', bad ?? 'bad request'));
      } else {
        const refuse: Refuse = (error) => {
          replyError(res, req, error, challenge(error));
        };
        const proceed = unlessLooped(req, refuse, (session) =>
          forward(session, req, res, at, via.entry),
        );
        run(req, 'http', at.target, refuse, (session) => (work = proceed(session)));
      }
      // The next request waits for this answer, and for this exchange to hand its outbound
      // connection back (to be reused by the next one).
      return closed(res).then(() => work);
    });
  };
  server.on('request', onRequest);
  // `Expect: 100-continue`: the 100 comes from the origin (forward() passes it on), not from
  // node:http before the client is even authenticated.
  server.on('checkContinue', onRequest);

  // node:http hands over the socket for CONNECT and upgrades: answers are written raw. One
  // pipelined behind other requests waits for their answers before it takes the connection.
  server.on('connect', (req: IncomingMessage, _socket: Duplex, head: Buffer) => {
    const socket = req.socket;
    const serve = (): Promise<void> => {
      const target = parseConnectAuthority(req.url ?? '');
      if (!target) {
        // No Host check: the authority is the whole request (RFC 9110 §9.3.6).
        const text = `bad CONNECT authority "${req.url ?? ''}" (use host:port)`;
        clientOf(socket).log.debug({ reason: text }, 'http: bad request');
        refuseRaw(socket)(new ProxyError('BAD_REQUEST', text));
      } else {
        const refuse = refuseRaw(socket);
        const proceed = unlessLooped(req, refuse, (session) =>
          tunnel(session, req, socket, head, via.entry),
        );
        run(req, 'connect', target, refuse, proceed);
      }
      return HANDED_OVER;
    };
    turns.take(socket, serve, true);
  });

  server.on('upgrade', (req: IncomingMessage, _socket: Duplex, head: Buffer) => {
    const socket = req.socket;
    const serve = (): Promise<void> => {
      const at = parseAbsoluteForm(req.url ?? '');
      const bad = badTarget(req, typeof at === 'string' ? at : undefined);
      if (bad !== undefined || typeof at === 'string') {
        refuseRaw(socket)(new ProxyError('BAD_REQUEST', bad ?? 'bad request'));
      } else {
        const refuse = refuseRaw(socket);
        const proceed = unlessLooped(req, refuse, (session) =>
          forwardUpgrade(session, req, socket, head, at, via.entry),
        );
        run(req, 'http', at.target, refuse, proceed);
      }
      return HANDED_OVER;
    };
    turns.take(socket, serve, true);
  });

  /** Answers a request head that cannot be served: a parse error, or a deadline passed. */
  const answerBadHead = (socket: Socket, code: string | undefined): void => {
    // node:http reports every later chunk of a broken stream too: answer once, then linger.
    if (answered.has(socket)) return;
    if (code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const cut = lastParsed.get(socket);
    if (cut !== undefined && !cut.complete) {
      // The body of a request being served broke off (a FIN, bad chunk framing): it can never
      // end, so its exchange would wait for it forever. Tearing it down closes the connection
      // and aborts what was sent upstream, as a client that leaves does.
      clients.get(socket)?.log.debug({ code }, 'http: request body cut short');
      cut.destroy(
        new ProxyError('CLIENT_CLOSED', `request body cut short (${code ?? 'parse error'})`),
      );
      return;
    }
    const [status, what] = PARSE_ERRORS.get(code ?? '') ?? [
      400,
      `malformed request (${code ?? 'parse error'})`,
    ];
    clients.get(socket)?.log.debug({ code }, `http: ${what}`);
    const reply = (): void => {
      replyAndClose(socket, status, statusText(status, what));
    };
    if (!turns.busy(socket)) {
      reply();
      return;
    }
    // Pipelined behind requests still being served: answered in its turn, after theirs.
    const inTurn = (): Promise<void> => {
      reply();
      return closed(socket);
    };
    turns.take(socket, inTurn, true);
  };
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    answerBadHead(socket, err.code);
  });

  // The first request head parsed ends the listener's handshake deadline; node:http's
  // headersTimeout bounds each later one on a kept-alive connection.
  const headParsed = (req: IncomingMessage): void => {
    clients.get(req.socket)?.handshakeDone();
  };
  // Once the inbound closes, a kept-alive connection ends with the response in flight instead
  // of idling until keepAliveTimeout: shutdown waits for sessions, not for connections.
  let closing = false;
  // One listener for every response (the response is `this`), rather than a closure each.
  function endIfClosing(this: ServerResponse): void {
    // Its socket is detached by now: the request still names it.
    if (closing) this.req.socket.destroySoon();
  }
  const requestParsed = (req: IncomingMessage, res: ServerResponse): void => {
    headParsed(req);
    lastParsed.set(req.socket, req);
    res.on('finish', endIfClosing);
  };
  server.on('request', requestParsed);
  server.on('checkContinue', requestParsed);
  server.on('connect', headParsed);
  server.on('upgrade', headParsed);

  return {
    handle(client) {
      const { socket } = client;
      // The listener's deadline is answered like node:http's own headersTimeout.
      client.onHandshakeTimeout(() => {
        answerBadHead(socket, 'ERR_HTTP_REQUEST_TIMEOUT');
      });
      server.headersTimeout = env.runtime().limits.handshake_timeout;
      clients.set(socket, client);
      server.emit('connection', socket);
    },
    close() {
      closing = true;
      // Stops the deadline check and closes idle kept-alive client connections.
      server.close();
    },
  };
}

/** Resolves once `stream` has closed (a response: finished or torn down). */
function closed(stream: Socket | ServerResponse): Promise<void> {
  if ('closed' in stream && stream.closed) return Promise.resolve();
  // 'close' comes once: a plain listener spares the once() wrapper.
  return new Promise((resolve) => stream.on('close', () => resolve()));
}

/**
 * RFC 7617 §2: `Basic base64(user-id ":" password)`, the user-id ending at the first colon.
 * Resolves to the user name, or to the error to answer with (407).
 */
async function authenticate(
  auth: Authenticator,
  header: string | undefined,
): Promise<string | ProxyError> {
  if (header === undefined) return new ProxyError('AUTH_REQUIRED', 'proxy credentials required');
  const token = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header)?.[1];
  const decoded = token === undefined ? '' : Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = decoded.slice(0, Math.max(colon, 0));
  if (colon < 0 || !(await auth.verify(user, decoded.slice(colon + 1)))) {
    return new ProxyError('AUTH_FAILED', 'wrong proxy username or password');
  }
  return user;
}
