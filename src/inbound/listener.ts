import { createServer, type AddressInfo, type Socket } from 'node:net';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { hostToString } from '../target.js';
import { readProxyPreamble } from './proxy-preamble.js';
import { normaliseIp, type Endpoint } from './proxy-protocol.js';
import type { Accepted, Inbound, ProtocolEnv, ProtocolHandler } from './types.js';

/**
 * The accept loop of one inbound: the connection cap, the source allow-list, the handshake
 * deadline, and the set of live client sockets (for shutdown). The protocol handler does the rest.
 */
export function createListener(env: ProtocolEnv, handler: ProtocolHandler): Inbound {
  // A reload never changes these two (reload.ts).
  const { name, listen } = env.config;
  const { log } = env;
  const live = new Set<Socket>();
  /** Accepted, request not parsed yet: nothing a shutdown has to wait for. */
  const handshaking = new Set<Socket>();
  let waiting: (() => void)[] = [];
  const server = createServer({ allowHalfOpen: true, noDelay: true });
  let refusedSinceLog = 0;

  const release = (socket: Socket): void => {
    live.delete(socket);
    handshaking.delete(socket);
    if (live.size > 0) return;
    const resolvers = waiting;
    waiting = [];
    for (const resolve of resolvers) resolve();
  };

  server.on('connection', (socket: Socket) => {
    // Errors before the handler attaches its own (a reset during the handshake) must not crash.
    socket.on('error', ignore);
    const limits = env.runtime().limits;
    if (live.size >= limits.max_connections) {
      env.runtime().metrics.connectionRefused(name, 'max_connections');
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
    handshaking.add(socket);
    const connection = accept(env, socket, limits.handshake_timeout, handshaking, release);
    const mode = env.config.proxy_protocol;
    if (mode === undefined) {
      handler.handle(connection.from(connection.peer));
      return;
    }
    // The header comes before the allow decision: its address is the client's.
    const trusted = env.trustsProxyHeaderFrom(connection.peer.ip);
    const options = {
      mode,
      trusted,
      peer: connection.peer,
      log: () => connection.log,
      refused: () => {
        env.runtime().metrics.connectionRefused(name, 'proxy_protocol');
      },
    };
    readProxyPreamble(socket, options).then(
      (client) => {
        if (client) handler.handle(connection.from(client));
      },
      (err: unknown) => {
        connection.log.error({ err }, 'PROXY protocol header failed');
        socket.destroy();
      },
    );
  });

  return {
    name,
    get activeConnections() {
      return live.size;
    },
    listen() {
      return new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: hostToString(listen.host), port: listen.port }, () => {
          server.off('error', reject);
          server.on('error', (err) => log.error({ err }, 'listener error'));
          resolve(server.address() as AddressInfo);
        });
      });
    },
    close() {
      try {
        // server.close() stops accepting at once; its callback would wait for every live
        // connection, which is the shutdown grace's business, not ours.
        if (server.listening) server.close();
      } finally {
        handler.close?.();
        // Behind a load balancer, a connection accepted in the last moment before the close
        // has a session to start that no one else will: it may finish its handshake within
        // the deadline. (The balancer's own checks close by themselves.)
        if (env.config.proxy_protocol === undefined) {
          const shutdown = new ProxyError('SHUTDOWN', 'gateway shutting down');
          for (const socket of handshaking) socket.destroy(shutdown);
        }
      }
      return Promise.resolve();
    },
    drained() {
      if (live.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    closeConnections(reason) {
      for (const socket of live) socket.destroy(reason);
    },
  };
}

/** An accepted connection before its client is known (a PROXY protocol header may name it). */
interface Connection {
  /** The address the connection comes from. */
  readonly peer: Endpoint;
  /** Bound to the inbound and the client address known so far. */
  readonly log: Logger;
  /** The connection as the protocol handler sees it, from `client` (decides `allow`). */
  from(client: Endpoint): Accepted;
}

/**
 * One accepted connection: its allow decision, made once before any protocol step, and its
 * handshake deadline, one absolute timer from accept until the handler says the request is
 * parsed, whatever arrives meanwhile (a socket idle timer would restart on every dripped byte).
 */
function accept(
  env: ProtocolEnv,
  socket: Socket,
  handshakeMs: number,
  handshaking: Set<Socket>,
  release: (socket: Socket) => void,
): Connection {
  return new AcceptedConnection(env, socket, handshakeMs, handshaking, release);
}

/**
 * A class rather than closures: the record lives as long as its connection, a tunnel's hours
 * included, and its methods then live once on the prototype.
 */
class AcceptedConnection implements Connection, Accepted {
  readonly socket: Socket;
  readonly peer: Endpoint;
  source: Endpoint;
  allowed = false;
  private readonly env: ProtocolEnv;
  private readonly handshaking: Set<Socket>;
  /** Created on first use: a healthy connection logs only its access line, via the session. */
  private clientLog: Logger | undefined;
  /** The protocol's last word at the handshake deadline. */
  private answer: (() => void) | undefined;
  private expired = false;
  /** handshake_timeout 0: no deadline. */
  private deadline: NodeJS.Timeout | undefined;

  constructor(
    env: ProtocolEnv,
    socket: Socket,
    handshakeMs: number,
    handshaking: Set<Socket>,
    release: (socket: Socket) => void,
  ) {
    this.env = env;
    this.socket = socket;
    this.handshaking = handshaking;
    this.peer = { ip: normaliseIp(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    this.source = this.peer;
    if (handshakeMs > 0) {
      this.deadline = setTimeout(() => {
        this.expire();
      }, handshakeMs);
    }
    // 'close' comes once: a plain listener spares the once() wrapper.
    socket.on('close', () => {
      clearTimeout(this.deadline);
      release(socket);
      // Every load balancer's TCP health check connects and closes without a byte: no session,
      // and nothing worth more than a debug line.
      if (socket.bytesRead === 0 && !this.expired) this.log.debug('closed before sending a byte');
    });
  }

  get log(): Logger {
    return (this.clientLog ??= this.env.log.child({
      client: `${this.source.ip}:${this.source.port}`,
    }));
  }

  from(client: Endpoint): Accepted {
    if (client !== this.source) {
      this.source = client;
      this.clientLog = undefined;
    }
    this.allowed = this.env.allows(client.ip);
    return this;
  }

  handshakeDone(): void {
    clearTimeout(this.deadline);
    // Not kept by a tunnel that may idle for hours.
    this.deadline = undefined;
    this.handshaking.delete(this.socket);
  }

  onHandshakeTimeout(lastWord: () => void): void {
    this.answer = lastWord;
  }

  private expire(): void {
    this.expired = true;
    const { socket, answer } = this;
    const reason = new ProxyError('HANDSHAKE_TIMEOUT', 'handshake timed out');
    if (!answer || !socket.writable) {
      socket.destroy(reason);
      return;
    }
    answer();
    // Once the last word is flushed the connection goes, even if the client is still sending:
    // no request may follow a deadline.
    socket.end(() => socket.destroy(reason));
  }
}

function ignore(): void {
  // An error before the handler has its own listener: the socket closes, and that is all.
}
