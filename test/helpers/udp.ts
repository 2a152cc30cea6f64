import { createSocket, type RemoteInfo, type Socket, type SocketType } from 'node:dgram';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { encodeSocks5Request, parseSocks5Address } from '../../src/inbound/socks-codec.js';
import { parseHost, type Target } from '../../src/target.js';
import { rawConnect, type RawClient } from './net.js';

/** A datagram as a test socket received it. */
export interface Received {
  readonly payload: Buffer;
  readonly address: string;
  readonly port: number;
}

/** A dgram socket on loopback that records what it receives and hands it out in order. */
export interface UdpPeer {
  readonly socket: Socket;
  readonly port: number;
  readonly seen: Received[];
  /** The next datagram not handed out yet, or a rejection after `timeoutMs`. */
  next(timeoutMs?: number): Promise<Received>;
  send(data: Buffer, port: number, host: string): Promise<void>;
  close(): Promise<void>;
}

export async function udpPeer(
  host = '127.0.0.1',
  onMessage?: (peer: UdpPeer, received: Received) => void,
  port = 0,
): Promise<UdpPeer> {
  const type: SocketType = host.includes(':') ? 'udp6' : 'udp4';
  const socket = createSocket({ type, ipv6Only: type === 'udp6' });
  const seen: Received[] = [];
  let handedOut = 0;
  let notify: (() => void) | undefined;
  socket.bind(port, host);
  await once(socket, 'listening');
  const peer: UdpPeer = {
    socket,
    port: socket.address().port,
    seen,
    next(timeoutMs = 3000) {
      return new Promise<Received>((resolve, reject) => {
        const timer = setTimeout(() => {
          notify = undefined;
          reject(new Error(`no datagram within ${timeoutMs}ms (seen ${seen.length})`));
        }, timeoutMs);
        const check = (): void => {
          const found = seen[handedOut];
          if (!found) return;
          handedOut += 1;
          clearTimeout(timer);
          notify = undefined;
          resolve(found);
        };
        notify = check;
        check();
      });
    },
    send(data, toPort, toHost) {
      return new Promise<void>((resolve, reject) => {
        socket.send(data, toPort, toHost, (err) => (err ? reject(err) : resolve()));
      });
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (payload: Buffer, rinfo: RemoteInfo) => {
    const received = { payload, address: rinfo.address, port: rinfo.port };
    seen.push(received);
    onMessage?.(peer, received);
    notify?.();
  });
  return peer;
}

/**
 * A "DNS-style" query: ID, flags (RD), one question for `name` IN A. The answer (`dnsAnswer`)
 * keeps the ID and question, sets QR and RA, and adds one A record whose address is derived from
 * the name, so a correct round trip is provable byte for byte.
 */
export function dnsQuery(id: number, name: string): Buffer {
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  const labels = name.split('.').flatMap((label) => [label.length, ...Buffer.from(label)]);
  return Buffer.concat([header, Buffer.from([...labels, 0, 0, 1, 0, 1])]);
}

export function dnsAnswer(query: Buffer): Buffer {
  const answer = Buffer.from(query);
  answer[2] = 0x81;
  answer[3] = 0x80;
  answer[7] = 1; // ANCOUNT
  const last = query.length % 250;
  const record = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, last];
  return Buffer.concat([answer, Buffer.from(record)]);
}

/** A UDP "DNS server" on `host` that answers every datagram with dnsAnswer(datagram). */
export function dnsServer(host = '127.0.0.1', port = 0): Promise<UdpPeer> {
  return udpPeer(
    host,
    (peer, received) => {
      peer.socket.send(dnsAnswer(received.payload), received.port, received.address);
    },
    port,
  );
}

export interface Association {
  readonly control: RawClient;
  /** The whole reply to UDP ASSOCIATE. */
  readonly reply: Buffer;
  /** BND.ADDR/BND.PORT of a success reply. */
  readonly relay: Target | undefined;
}

/**
 * A hand-built UDP ASSOCIATE: greeting (no auth, or username/password), request declaring
 * `declared` (zeros by default), and the reply read whole.
 */
export async function associate(
  proxyPort: number,
  options: {
    proxyHost?: string;
    declared?: Target;
    credentials?: { username: string; password: string };
  } = {},
): Promise<Association> {
  const control = await rawConnect(proxyPort, options.proxyHost);
  const { credentials } = options;
  control.write(Buffer.from([0x05, 0x01, credentials ? 0x02 : 0x00]));
  const method = await control.read(2);
  if (credentials) {
    if (method[1] !== 0x02) throw new Error(`method ${method.toString('hex')}`);
    const user = Buffer.from(credentials.username);
    const pass = Buffer.from(credentials.password);
    control.write(
      Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]),
    );
    const status = await control.read(2);
    if (status[1] !== 0x00) throw new Error(`authentication failed: ${status.toString('hex')}`);
  } else if (method[1] !== 0x00) {
    throw new Error(`method ${method.toString('hex')}`);
  }
  const declared = options.declared ?? { host: parseHost('0.0.0.0')!, port: 0 };
  control.write(encodeSocks5Request('udp-associate', declared));
  const head = await control.read(4);
  const length = head[3] === 0x04 ? 16 : 4;
  const reply = Buffer.concat([head, await control.read(length + 2)]);
  const parsed = parseSocks5Address(reply, 3);
  const relay = head[1] === 0x00 && parsed.kind === 'ok' ? parsed.value : undefined;
  return { control, reply, relay };
}

/** Open file descriptors of this process: sockets included. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/**
 * Proves nothing listens on a UDP port any more: a connected socket's datagram to it comes back
 * as ICMP port unreachable, which Linux reports as ECONNREFUSED.
 */
export async function udpPortClosed(port: number, host = '127.0.0.1'): Promise<boolean> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  try {
    socket.connect(port, host);
    await once(socket, 'connect');
    const refused = new Promise<boolean>((resolve) => {
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
      socket.once('message', () => resolve(false));
      setTimeout(() => resolve(false), 2000).unref();
    });
    socket.send(Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0, 9, 0x78]));
    return await refused;
  } finally {
    socket.close();
  }
}
