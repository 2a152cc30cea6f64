import type { ProtocolHandler } from './types.js';

const SOCKS4 = 0x04;
const SOCKS5 = 0x05;

/**
 * One port for HTTP and SOCKS: the first byte decides (0x04 SOCKS4, 0x05 SOCKS5, anything
 * else HTTP). The byte is put back so the chosen handler sees the stream from its start.
 */
export function createMixedHandler(socks: ProtocolHandler, http: ProtocolHandler): ProtocolHandler {
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
        (byte === SOCKS4 || byte === SOCKS5 ? socks : http).handle(accepted);
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
