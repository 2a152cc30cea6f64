import { isIPv4, isIPv6 } from 'node:net';
import { rawConnect, type RawClient } from './net.js';

/** The bytes of a SOCKS5 CONNECT request (RFC 1928 §4) for an IPv4, IPv6 or name target. */
export function socks5Request(host: string, port: number, command = 0x01): Buffer {
  let address: Buffer;
  if (isIPv4(host)) {
    address = Buffer.from([0x01, ...host.split('.').map(Number)]);
  } else if (isIPv6(host)) {
    const groups = host.split('::');
    const head = (groups[0] ?? '').split(':').filter(Boolean);
    const tail = (groups[1] ?? '').split(':').filter(Boolean);
    const all =
      groups.length === 2
        ? [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail]
        : head;
    address = Buffer.alloc(17);
    address[0] = 0x04;
    all.forEach((group, i) => address.writeUInt16BE(parseInt(group, 16), 1 + i * 2));
  } else {
    address = Buffer.concat([Buffer.from([0x03, host.length]), Buffer.from(host, 'latin1')]);
  }
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0x05, command, 0x00]), address, portBytes]);
}

export interface Socks5Tunnel {
  readonly client: RawClient;
  /** The REP byte of the reply. */
  readonly reply: number;
  /** The whole reply. */
  readonly replyBytes: Buffer;
}

/** Greets with no-auth (or username/password), sends CONNECT and reads the whole reply. */
export async function socks5Connect(
  proxyPort: number,
  host: string,
  port: number,
  credentials?: { username: string; password: string },
): Promise<Socks5Tunnel> {
  const client = await rawConnect(proxyPort);
  client.write(Buffer.from([0x05, 0x01, credentials ? 0x02 : 0x00]));
  const choice = await client.read(2);
  if (choice[1] === 0x02 && credentials) {
    const user = Buffer.from(credentials.username);
    const pass = Buffer.from(credentials.password);
    client.write(
      Buffer.concat([Buffer.from([0x01, user.length]), user, Buffer.from([pass.length]), pass]),
    );
    const status = await client.read(2);
    if (status[1] !== 0x00) return { client, reply: -1, replyBytes: status };
  } else if (choice[1] !== 0x00) {
    return { client, reply: -1, replyBytes: choice };
  }
  client.write(socks5Request(host, port));
  const head = await client.read(4);
  const addressLength = head[3] === 0x01 ? 4 : head[3] === 0x04 ? 16 : (await client.read(1))[0]!;
  const rest = await client.read(addressLength + 2);
  return { client, reply: head[1]!, replyBytes: Buffer.concat([head, rest]) };
}
