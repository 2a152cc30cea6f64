import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createSourceAllowList } from '../policy.js';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { hostToString } from '../target.js';
import type { Inbound, ProtocolEnv, ProtocolHandler } from './types.js';

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
    socket.setTimeout(limits.handshake_timeout, () => {
      socket.destroy(new ProxyError('HANDSHAKE_TIMEOUT', 'handshake timed out'));
    });
    const ip = normaliseIp(socket.remoteAddress ?? '');
    const source = { ip, port: socket.remotePort ?? 0 };
    let clientLog: Logger | undefined;
    handler.handle({
      socket,
      source,
      allowed: isAllowed(ip),
      // Created on first use: a healthy connection logs only its access line, via the session.
      get log() {
        return (clientLog ??= log.child({ client: `${ip}:${source.port}` }));
      },
    });
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

/** `::ffff:127.0.0.1` on a dual-stack listener is the IPv4 client 127.0.0.1. */
function normaliseIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
