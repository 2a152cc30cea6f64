import type { ProtocolHandler } from './types.js';

const SOCKS4 = 0x04;
const SOCKS5 = 0x05;
/** A TLS record of type handshake: the ClientHello of an HTTPS proxy client. */
const TLS_HANDSHAKE = 0x16;

/**
 * One port for HTTP and SOCKS (and HTTP inside TLS when the inbound has a certificate): the
 * first byte decides (0x04 SOCKS4, 0x05 SOCKS5, 0x16 TLS, anything else HTTP). The byte is put
 * back so the chosen handler sees the stream from its start. `tls` gives the TLS handler of the
 * configuration in force, or undefined when it has no certificate.
 */
export function createMixedHandler(
  socks: ProtocolHandler,
  http: ProtocolHandler,
  tls: () => ProtocolHandler | undefined = () => undefined,
): ProtocolHandler {
  let tlsHandler: ProtocolHandler | undefined;
  const tlsFor = (): ProtocolHandler | undefined => (tlsHandler ??= tls());
  return {
    handle(accepted) {
      const { socket } = accepted;
      const stop = (): void => {
        socket.off('readable', onReadable);
        socket.off('end', onEnd);
      };
      const onReadable = (): void => {
        const first = socket.read(1) as Buffer | null;
        if (first === null) return;
        stop();
        socket.unshift(first);
        const byte = first[0];
        const secure = byte === TLS_HANDSHAKE ? tlsFor() : undefined;
        (byte === SOCKS4 || byte === SOCKS5 ? socks : (secure ?? http)).handle(accepted);
      };
      // A FIN before the first byte (a load balancer's probe): there is nothing to answer, and
      // the half-open socket would otherwise wait in CLOSE-WAIT for the handshake deadline.
      const onEnd = (): void => {
        stop();
        socket.destroy();
      };
      socket.on('readable', onReadable);
      socket.on('end', onEnd);
    },
    close() {
      socks.close?.();
      http.close?.();
    },
  };
}
