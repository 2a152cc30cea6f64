// RFC 8446 (TLS 1.3) server side via node:tls: an HTTPS proxy (`curl --proxy https://…`,
// browsers' "HTTPS proxy") is the HTTP proxy inside TLS. The certificate of the configuration
// in force is presented, so a reload that re-reads the PEM files takes effect for the next
// connection.
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { errorCode } from '../errors.js';
import type { Accepted, ProtocolEnv, ProtocolHandler } from './types.js';

type TlsConfig = NonNullable<ProtocolEnv['config']['tls']>;

export function createTlsHandler(env: ProtocolEnv, inner: ProtocolHandler): ProtocolHandler {
  let cached: { readonly tls: TlsConfig; readonly context: SecureContext } | undefined;
  /** One context per configuration generation (the schema checked that it can be built). */
  const contextFor = (tls: TlsConfig): SecureContext => {
    if (cached?.tls !== tls) cached = { tls, context: createSecureContext(tls) };
    return cached.context;
  };
  return {
    handle(accepted) {
      const tls = env.config.tls;
      if (!tls) {
        accepted.socket.destroy();
        return;
      }
      const secure = new TLSSocket(accepted.socket, {
        isServer: true,
        secureContext: contextFor(tls),
        // The proxy speaks HTTP/1.1 only: a client offering h2 must not pick it.
        ALPNProtocols: ['http/1.1'],
      });
      const onError = (err: Error): void => {
        accepted.log.debug({ code: errorCode(err) ?? err.message }, 'TLS handshake failed');
        accepted.socket.destroy();
      };
      secure.once('error', onError);
      secure.once('secure', () => {
        secure.off('error', onError);
        // Later errors (a reset) are the inner handler's; an unhandled one must not crash.
        secure.on('error', () => undefined);
        inner.handle(inside(accepted, secure));
      });
    },
    close() {
      inner.close?.();
    },
  };
}

/** The same connection, as the protocol inside TLS sees it. */
function inside(accepted: Accepted, socket: TLSSocket): Accepted {
  return {
    socket,
    source: accepted.source,
    allowed: accepted.allowed,
    get log() {
      return accepted.log;
    },
    handshakeDone: () => {
      accepted.handshakeDone();
    },
    onHandshakeTimeout: (answer) => {
      accepted.onHandshakeTimeout(answer);
    },
  };
}
