import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createSourceAllowList } from '../policy.js';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { hostToString } from '../target.js';
import type { Accepted, Inbound, ProtocolEnv, ProtocolHandler } from './types.js';

/**
 * The accept loop of one inbound: the connection cap, the source allow-list, the handshake
 * deadline, and the set of live client sockets (for shutdown). The protocol handler does the rest.
 */
export function createListener(env: ProtocolEnv, handler: ProtocolHandler): Inbound {
  const { config, log } = env;
  const isAllowed = createSourceAllowList(config.allow);
  const live = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true, noDelay: true });
  let refusedSinceLog = 0;

  server.on('connection', (socket: Socket) => {
    // Errors before the handler attaches its own (a reset during the handshake) must not crash.
    socket.on('error', () => undefined);
    const limits = env.runtime().limits;
    if (live.size >= limits.max_connections) {
      env.runtime().metrics.connectionRefused(config.name, 'max_connections');
      if (refusedSinceLog++ === 0)
        log.warn(
          { max: limits.max_connections },
          'max_connections reached: refusing new connections',
        );
      socket.destroy();
      return;
    }
    refusedSinceLog = 0;
    live.add(socket);
    socket.once('close', () => live.delete(socket));
    const allowed = isAllowed(normaliseIp(socket.remoteAddress ?? ''));
    handler.handle(accept(env, socket, allowed, limits.handshake_timeout));
  });

  return {
    name: config.name,
    get activeConnections() {
      return live.size;
    },
    listen() {
      return new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: hostToString(config.listen.host), port: config.listen.port }, () => {
          server.off('error', reject);
          server.on('error', (err) => log.error({ err }, 'listener error'));
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      handler.close?.();
      // server.close() stops accepting at once; its callback would wait for every live
      // connection, which is the shutdown grace's business, not ours.
      if (server.listening) server.close();
      return Promise.resolve();
    },
    closeConnections(reason) {
      for (const socket of live) socket.destroy(reason);
    },
  };
}

/**
 * One accepted connection: its allow decision, made once before any protocol step, and its
 * handshake deadline, one absolute timer from accept until the handler says the request is
 * parsed, whatever arrives meanwhile (a socket idle timer would restart on every dripped byte).
 */
function accept(env: ProtocolEnv, socket: Socket, allowed: boolean, handshakeMs: number): Accepted {
  const ip = normaliseIp(socket.remoteAddress ?? '');
  const source = { ip, port: socket.remotePort ?? 0 };
  // Created on first use: a healthy connection logs only its access line, via the session.
  let clientLog: Logger | undefined;
  const log = (): Logger => (clientLog ??= env.log.child({ client: `${ip}:${source.port}` }));
  let answer: (() => void) | undefined;

  const expire = (): void => {
    const reason = new ProxyError('HANDSHAKE_TIMEOUT', 'handshake timed out');
    if (!answer || !socket.writable) {
      socket.destroy(reason);
      return;
    }
    answer();
    // Once the last word is flushed the connection goes, even if the client is still sending:
    // no request may follow a deadline.
    socket.end(() => socket.destroy(reason));
  };
  // handshake_timeout 0: no deadline.
  const deadline = handshakeMs > 0 ? setTimeout(expire, handshakeMs) : undefined;

  socket.once('close', () => {
    clearTimeout(deadline);
  });

  return {
    socket,
    source,
    allowed,
    get log() {
      return log();
    },
    handshakeDone() {
      clearTimeout(deadline);
    },
    onHandshakeTimeout(lastWord) {
      answer = lastWord;
    },
  };
}

/** `::ffff:127.0.0.1` on a dual-stack listener is the IPv4 client 127.0.0.1. */
function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
