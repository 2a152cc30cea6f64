/**
 * SOCKS4 and SOCKS4a server side (no RFC; see socks-codec.ts): CONNECT only. The reply is 0x5A
 * with the bound IPv4 address, or 0x5B for every failure, as the protocol has no finer codes.
 * SOCKS4 has no password, so with `auth` configured it is refused (SPEC "SOCKS inbound").
 */
import { ProxyError, REPLIES } from '../errors.js';
import { SOCKS4_GRANTED, encodeSocks4Reply, parseSocks4Request } from './socks-codec.js';
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

/** VN CD DSTPORT DSTIP, a USERID and a 4a HOSTNAME of up to 255 bytes each, with their NULs. */
const MAX_REQUEST = 8 + 256 + 256;

const replies: SocksReplies = {
  success: (bound) => encodeSocks4Reply(SOCKS4_GRANTED, bound),
  failure: (err) => encodeSocks4Reply(REPLIES[err.code].socks4),
};

export async function serveSocks4(env: ProtocolEnv, accepted: Accepted): Promise<Served> {
  const client: SocksClient = { env, accepted, protocol: 'socks4' };
  const { socket } = accepted;
  // The whole request is read even when it will be refused, so the refusal is not lost to a reset.
  const request = await readMessage(socket, parseSocks4Request, MAX_REQUEST);
  if (request.kind === 'closed') {
    await handshakeFailed(client, request);
    return;
  }
  if (request.kind === 'error') {
    await handshakeFailed(client, request, encodeSocks4Reply(REPLIES[request.code].socks4));
    return;
  }
  accepted.handshakeDone();
  const { command, target } = request.value;
  // The USERID is an identd name, not a credential: the session has no user.
  const session = openSession(client, undefined, target);
  if (!accepted.allowed) {
    await refuse(session, socket, notAllowed(), replies);
  } else if (env.auth) {
    const refused = new ProxyError('AUTH_REQUIRED', 'SOCKS4 cannot authenticate and auth is on');
    await refuse(session, socket, refused, replies);
  } else if (command === 'connect') {
    // Returned, not awaited: a tunnel's lifetime keeps no frame of this function.
    return connectAndRelay(session, socket, replies);
  } else {
    const unsupported = new ProxyError('CMD_UNSUPPORTED', `${command} is not supported`);
    await refuse(session, socket, unsupported, replies);
  }
}
