/**
 * RFC 1928 server side: §3 method selection, RFC 1929 username/password, §4 request, §6 replies.
 * CONNECT is served here; UDP ASSOCIATE goes to an AssociateHandler (socks5-udp.ts) when the
 * inbound has one, and BIND is not supported. A client outside `allow` goes through the same
 * steps with its credentials unchecked, and every request of it is refused 0x02.
 */
import type { Authenticator } from '../auth.js';
import { ProxyError, REPLIES, socks5Reply } from '../errors.js';
import type { Target } from '../target.js';
import {
  METHOD,
  encodeSocks5Reply,
  parseCredentials,
  parseSocks5Greeting,
  parseSocks5Request,
} from './socks-codec.js';
import {
  connectAndRelay,
  handshakeFailed,
  notAllowed,
  openSession,
  refuse,
  type SocksClient,
  type Served,
  type SocksReplies,
} from './socks-connect.js';
import { readMessage } from './socks-reader.js';
import type { Accepted, ProtocolEnv } from './types.js';

/** RFC 1928 §3: VER NMETHODS and up to 255 methods. */
const MAX_GREETING = 2 + 255;
/** RFC 1929 §2: VER ULEN UNAME(255) PLEN PASSWD(255). */
const MAX_CREDENTIALS = 3 + 255 + 255;
/** RFC 1928 §4: VER CMD RSV ATYP, a 255-byte name with its length byte, the port. */
const MAX_REQUEST = 4 + 1 + 255 + 2;

/** The client once authenticated, for a UDP ASSOCIATE handler. */
export interface Socks5Client extends SocksClient {
  readonly user: string | undefined;
}

/**
 * Serves one UDP ASSOCIATE: replies (success with the relay's address, or failure), then keeps
 * the association until the control connection closes. `declared` is the client's DST.ADDR and
 * DST.PORT, where it says it will send from (zeros when it does not know).
 */
export type AssociateHandler = (client: Socks5Client, declared: Target) => Promise<void>;

export interface Socks5Options {
  /** False on an inbound that speaks SOCKS4 only: every greeting gets 05 FF. */
  readonly enabled: boolean;
  /** Undefined until socks5-udp.ts plugs in, or when the inbound has `udp: false`: 0x07. */
  readonly associate: AssociateHandler | undefined;
}

/** The method chosen (§3) and the sub-negotiation's answers (RFC 1929 §2): the same for everyone. */
const CHOSEN = {
  [METHOD.noAuth]: Buffer.from([0x05, METHOD.noAuth]),
  [METHOD.userPass]: Buffer.from([0x05, METHOD.userPass]),
} as const;
const AUTH_OK = Buffer.from([0x01, 0x00]);
const AUTH_FAILED = Buffer.from([0x01, 0x01]);

const replies: SocksReplies = {
  success: (bound) => encodeSocks5Reply(0x00, bound),
  failure: (err) => encodeSocks5Reply(socks5Reply(err)),
};

export async function serveSocks5(
  env: ProtocolEnv,
  accepted: Accepted,
  options: Socks5Options,
): Promise<Served> {
  const client: SocksClient = { env, accepted, protocol: 'socks5' };
  const { socket } = accepted;
  // Read once: the method offered and the check made belong to the same configuration.
  const auth = env.auth;

  const greeting = await readMessage(socket, parseSocks5Greeting, MAX_GREETING);
  if (greeting.kind !== 'ok') {
    await handshakeFailed(client, greeting);
    return;
  }
  // With auth configured only username/password is offered (SPEC "SOCKS inbound").
  const method = auth ? METHOD.userPass : METHOD.noAuth;
  if (!options.enabled || !greeting.value.includes(method)) {
    const noMethod = Buffer.from([0x05, METHOD.noneAcceptable]);
    await handshakeFailed(client, { reason: 'no acceptable authentication method' }, noMethod);
    return;
  }
  socket.write(CHOSEN[method]);

  let user: string | undefined;
  if (auth) {
    const outcome = await authenticate(client, auth);
    if (outcome === 'closed') return;
    user = outcome.user;
  }

  const request = await readMessage(socket, parseSocks5Request, MAX_REQUEST);
  if (request.kind === 'closed') {
    await handshakeFailed(client, request);
    return;
  }
  if (request.kind === 'error') {
    await handshakeFailed(client, request, encodeSocks5Reply(REPLIES[request.code].socks5));
    return;
  }
  // From here connect_timeout and the relay's idle timeout bound the session.
  accepted.handshakeDone();

  const { command, target } = request.value;
  if (!accepted.allowed) {
    const protocol = command === 'udp-associate' ? 'socks5-udp' : 'socks5';
    const session = openSession({ ...client, protocol }, undefined, target);
    await refuse(session, socket, notAllowed(), replies);
    return;
  }
  if (command === 'udp-associate' && options.associate) {
    await options.associate({ ...client, user }, target);
    return;
  }
  const session = openSession(client, user, target);
  // Returned, not awaited: a tunnel's lifetime keeps no frame of this function.
  if (command === 'connect') return connectAndRelay(session, socket, replies);
  const unsupported = new ProxyError('CMD_UNSUPPORTED', `${command} is not supported`);
  await refuse(session, socket, unsupported, replies);
}

/**
 * RFC 1929: one attempt; `01 00` and the user name, or `01 01` and a close. A client outside
 * `allow` gets `01 00` whatever it sends, without any check (no password is tried for it, and
 * its answer cannot depend on one), and its request is then refused 0x02.
 */
async function authenticate(
  client: SocksClient,
  auth: Authenticator,
): Promise<{ readonly user: string | undefined } | 'closed'> {
  const { accepted } = client;
  const credentials = await readMessage(accepted.socket, parseCredentials, MAX_CREDENTIALS);
  if (credentials.kind === 'closed') {
    await handshakeFailed(client, credentials);
    return 'closed';
  }
  if (credentials.kind === 'error') {
    await handshakeFailed(client, credentials, AUTH_FAILED);
    return 'closed';
  }
  if (!accepted.allowed) {
    accepted.socket.write(AUTH_OK);
    return { user: undefined };
  }
  const { username, password } = credentials.value;
  if (await auth.verify(username, password)) {
    accepted.socket.write(AUTH_OK);
    return { user: username };
  }
  // The user name helps an operator; the password is never logged.
  accepted.log.debug({ user: username }, 'socks5 authentication failed');
  await handshakeFailed(client, { reason: 'authentication failed' }, AUTH_FAILED);
  return 'closed';
}
