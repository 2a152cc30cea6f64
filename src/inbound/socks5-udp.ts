/**
 * RFC 1928 §4 UDP ASSOCIATE (server side) and §7 procedure for UDP-based clients: one
 * association per request. The relay socket is bound on the address the client reached, and
 * the success reply names it (or `udp_advertise`); then the association (socks5-udp/) runs until
 * its TCP control connection closes or `udp_idle_timeout` passes without a datagram either way.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { errorCode, ProxyError, socks5Reply } from '../errors.js';
import { localIp } from '../local-ip.js';
import { parseHost } from '../target.js';
import { encodeSocks5Reply } from './socks-codec.js';
import { openSession, refuse, type SocksReplies } from './socks-connect.js';
import { runAssociation } from './socks5-udp/association.js';
import type { AssociateHandler } from './socks5.js';
import type { ProtocolEnv } from './types.js';

const replies: SocksReplies = {
  success: (bound) => encodeSocks5Reply(0x00, bound),
  failure: (err) => encodeSocks5Reply(socks5Reply(err)),
};

export function createAssociateHandler(env: ProtocolEnv): AssociateHandler {
  return async (client, declared) => {
    const session = openSession({ ...client, protocol: 'socks5-udp' }, client.user, declared);
    // A client outside `allow` never gets here: socks5.ts refuses its every request.
    const { socket } = client.accepted;
    if (session.refusal) {
      await refuse(session, socket, session.refusal, replies);
      return;
    }
    let relay: UdpSocket;
    try {
      // For a 0.0.0.0 or :: listener, the address this client connected to.
      relay = await bindRelay(localIp(socket, '127.0.0.1'));
    } catch (err) {
      const reason = `cannot bind the UDP relay: ${errorCode(err) ?? 'failed'}`;
      await refuse(session, socket, new ProxyError('INTERNAL', reason), replies);
      return;
    }
    const { address, port } = relay.address();
    const host = parseHost(env.config.udp_advertise ?? address);
    socket.write(replies.success(host && { host, port }));
    await runAssociation(client, declared, session, relay);
  };
}

function bindRelay(ip: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const relay = createSocket({ type: isIP(ip) === 6 ? 'udp6' : 'udp4' });
    relay.once('error', (err) => {
      relay.close();
      reject(err);
    });
    // Exclusive: the association lives in the worker process that holds its control connection.
    relay.bind({ port: 0, address: ip, exclusive: true }, () => {
      relay.removeAllListeners('error');
      resolve(relay);
    });
  });
}
