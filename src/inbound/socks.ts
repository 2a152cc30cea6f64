import { SOCKS4_VERSION, SOCKS5_VERSION, peekVersion } from './socks-codec.js';
import { closeWith, readMessage } from './socks-reader.js';
import { RELAYING, type Served } from './socks-connect.js';
import { serveSocks4 } from './socks4.js';
import { serveSocks5, type AssociateHandler } from './socks5.js';
import { createAssociateHandler } from './socks5-udp.js';
import type { Accepted, ProtocolEnv, ProtocolHandler } from './types.js';

export interface SocksVersions {
  readonly socks4: boolean;
  readonly socks5: boolean;
}

/**
 * The SOCKS inbound: the first byte (the version) picks SOCKS4/4a or SOCKS5. A version the inbound
 * does not speak is refused the way a client of it understands: a SOCKS5 client gets 05 FF (no
 * acceptable method), a SOCKS4 client a plain close. The handler owns the socket and destroys it
 * however the connection ends.
 */
export function createSocksHandler(env: ProtocolEnv, versions: SocksVersions): ProtocolHandler {
  // SOCKS5 UDP ASSOCIATE (socks5-udp.ts). `udp` is read per request, so a reload turns it on or
  // off for new requests; with `udp: false` a request is answered 0x07.
  const associate: AssociateHandler = createAssociateHandler(env);

  async function serve(accepted: Accepted): Promise<Served> {
    const { socket } = accepted;
    const first = await readMessage(socket, peekVersion, 1);
    if (first.kind === 'closed' && !first.timedOut && socket.bytesRead === 0) {
      // A probe: connected and closed without a byte. The listener logs it at debug.
      await closeWith(socket);
      return;
    }
    const version = first.kind === 'ok' ? first.value : undefined;
    if (version === SOCKS5_VERSION) {
      const udp = env.config.udp ? associate : undefined;
      // Returned, not awaited: a tunnel's lifetime keeps no frame of this function.
      return serveSocks5(env, accepted, { enabled: versions.socks5, associate: udp });
    } else if (version === SOCKS4_VERSION && versions.socks4) {
      return serveSocks4(env, accepted);
    } else {
      const reason =
        first.kind === 'closed' ? first.reason : 'not a SOCKS version this inbound speaks';
      accepted.log.debug({ reason }, 'socks handshake rejected');
      await closeWith(socket);
      accepted.log.info({ reason }, 'handshake failed');
    }
  }

  return {
    handle(accepted) {
      // Settled once the handshake is over; a tunnel then belongs to its relay.
      serve(accepted).then(
        (served) => {
          if (served !== RELAYING) accepted.socket.destroy();
        },
        (err: unknown) => {
          accepted.log.error({ err }, 'socks handler failed');
          accepted.socket.destroy();
        },
      );
    },
  };
}
