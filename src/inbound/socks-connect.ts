import { Socket } from 'node:net';
import { ProxyError, toProxyError, type ErrorCode } from '../errors.js';
import type { Connected } from '../outbound/types.js';
import { startSession, type Protocol, type Session } from '../session.js';
import { parseHost, type Target } from '../target.js';
import { closeWith } from './socks-reader.js';
import type { Accepted, ProtocolEnv } from './types.js';

/**
 * What SOCKS4 and SOCKS5 share once a request is parsed: ARCHITECTURE's "connect first, reply
 * second". The session routes and dials; only then does the client get its success reply and the
 * relay start. Every failure is answered with the protocol's code from errors.ts, then closed.
 */

export interface SocksClient {
  readonly env: ProtocolEnv;
  readonly accepted: Accepted;
  readonly protocol: Extract<Protocol, 'socks4' | 'socks5' | 'socks5-udp'>;
}

export interface SocksReplies {
  success(bound: Target | undefined): Buffer;
  failure(err: ProxyError): Buffer;
}

/** A session for a parsed request: from here on every ending is one access-log line. */
export function openSession(
  client: SocksClient,
  user: string | undefined,
  target: Target,
): Session {
  const { env, accepted } = client;
  const info = {
    id: env.nextId(),
    inbound: env.config.name,
    protocol: client.protocol,
    source: accepted.source,
    user,
    target,
  };
  return startSession({ runtime: env.runtime(), log: env.log }, info, accepted.socket);
}

/** The refusal of a client whose address is not in `allow` (SOCKS5 0x02, SOCKS4 0x5B). */
export function notAllowed(): ProxyError {
  return new ProxyError('NOT_ALLOWED', 'client address not allowed');
}

/**
 * What a SOCKS handler resolves with once the socket belongs to a relay: the handler must not
 * close it then (the relay closes it when the tunnel ends).
 */
export const RELAYING = 'relaying';
export type Served = typeof RELAYING | undefined;

export async function connectAndRelay(
  session: Session,
  socket: Socket,
  replies: SocksReplies,
): Promise<Served> {
  if (session.info.target.port === 0) {
    const portZero = new ProxyError('BAD_REQUEST', 'port 0 is not a destination');
    await refuse(session, socket, portZero, replies);
    return undefined;
  }
  let conn: Connected;
  try {
    conn = await session.connect();
  } catch (err) {
    // connect() rejects only with ProxyError; anything else would be a bug in session.ts.
    const failure = toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
    await refuse(session, socket, failure, replies);
    return undefined;
  }
  socket.write(replies.success(boundAddress(conn)));
  // The relay goes on by itself: a tunnel's lifetime keeps no frame of this function.
  session.relay(socket, conn.stream);
  return RELAYING;
}

/** Answers a session that will not relay with the protocol's code, closes, logs it once. */
export async function refuse(
  session: Session,
  socket: Socket,
  err: ProxyError,
  replies: SocksReplies,
): Promise<void> {
  await closeWith(socket, replies.failure(err));
  session.fail(err);
}

/**
 * A handshake that never became a session: close (with the protocol's last word, if it has one)
 * and log it, since no access-log line will. `detail` is a reason from our own parser or checks,
 * never the client's bytes, which may hold a password.
 */
export async function handshakeFailed(
  client: SocksClient,
  detail: { reason: string; code?: ErrorCode },
  reply?: Buffer,
): Promise<void> {
  const { log, socket } = client.accepted;
  const { reason, code } = detail;
  log.debug({ protocol: client.protocol, reason, code }, 'socks handshake rejected');
  await closeWith(socket, reply);
  log.info({ protocol: client.protocol, reason }, 'handshake failed');
}

/** BND.ADDR/BND.PORT: where the far end sees us, as the outbound knows it or as our socket is bound. */
function boundAddress(conn: Connected): Target | undefined {
  if (conn.bound) return conn.bound;
  const { stream } = conn;
  if (!(stream instanceof Socket) || stream.localAddress === undefined) return undefined;
  const host = parseHost(stream.localAddress);
  return host && stream.localPort !== undefined ? { host, port: stream.localPort } : undefined;
}
