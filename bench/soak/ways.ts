// The client side of each way into junction: HTTP CONNECT (RFC 9110 §9.3.6), SOCKS4 and 4a,
// SOCKS5 (RFC 1928) with RFC 1929 username/password. Written byte by byte so that every reply
// can be checked exactly.
import { isIPv4 } from 'node:net';
import { rawConnect, type RawClient } from '../../test/helpers/net.js';
import { socks5Request } from '../../test/helpers/socks-client.js';
import { USER, type InboundName } from './junction.js';

export type WayKind = 'connect' | 'socks4' | 'socks4a' | 'socks5' | 'forward';

export interface Way {
  readonly name: string;
  readonly inbound: InboundName;
  readonly kind: WayKind;
  /** The `protocol` of junction's access line for a session that came this way. */
  readonly protocol: 'connect' | 'socks4' | 'socks5' | 'http';
  /** Sends the configured user's credentials (the mixed inbound requires them). */
  readonly credentials: boolean;
  /** How this way names a working origin: an address, or a name junction resolves. */
  readonly originHost: '127.0.0.1' | 'localhost';
}

const way = (
  name: string,
  inbound: InboundName,
  kind: WayKind,
  credentials = false,
  originHost: Way['originHost'] = '127.0.0.1',
): Way => {
  const protocol = kind === 'forward' ? 'http' : kind === 'socks4a' ? 'socks4' : kind;
  return { name, inbound, kind, protocol, credentials, originHost };
};

/** Every way in that can reach a target: CONNECT, SOCKS4/4a/5 and forwarded requests. */
export const WAYS: readonly Way[] = [
  way('connect@http', 'http', 'connect'),
  way('forward@http', 'http', 'forward'),
  way('socks4@socks', 'socks', 'socks4'),
  way('socks4a@socks', 'socks', 'socks4a', false, 'localhost'),
  way('socks5@socks', 'socks', 'socks5'),
  way('socks5-name@socks', 'socks', 'socks5', false, 'localhost'),
  way('connect+auth@mixed', 'mixed', 'connect', true),
  way('forward+auth@mixed', 'mixed', 'forward', true),
  way('socks5+auth@mixed', 'mixed', 'socks5', true, 'localhost'),
];

/** SOCKS4 on the inbound with `auth`: it cannot authenticate, so it is always refused. */
export const SOCKS4_ON_AUTH_INBOUND = way('socks4@mixed', 'mixed', 'socks4');

/** Plain TCP connections to each inbound, for clients that never speak (probes). */
export const RAW_WAYS: readonly Way[] = (['http', 'socks', 'mixed'] as const).map((inbound) =>
  way(`tcp@${inbound}`, inbound, 'connect'),
);

export const TUNNEL_WAYS = WAYS.filter((w) => w.kind !== 'forward');
export const FORWARD_WAYS = WAYS.filter((w) => w.kind === 'forward');
/** The ways into the inbound that has a user. */
export const USER_INBOUND_WAYS = WAYS.filter((w) => w.credentials);
/** Ways that can carry a host name to junction (SOCKS4 carries only IPv4 addresses). */
export const NAMING_WAYS = WAYS.filter((w) => w.kind !== 'socks4');

export interface Opened {
  readonly client: RawClient;
  /** Which answer `code` is: the SOCKS5 method choice, the RFC 1929 status, or the reply. */
  readonly stage: 'method' | 'auth' | 'reply';
  /** SOCKS5 REP, SOCKS4 CD, or the HTTP status of the CONNECT answer. */
  readonly code: number;
  readonly ok: boolean;
  /** A CONNECT answer's Proxy-Authenticate field. */
  readonly challenge?: string | undefined;
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export type CredentialChoice = 'right' | 'wrong' | 'none';

/** What a client of way `w` sends: the configured user, a wrong password, or nothing. */
export function credentialsFor(
  w: Way,
  choice: CredentialChoice = 'right',
): Credentials | undefined {
  if (!w.credentials || choice === 'none') return undefined;
  return choice === 'wrong'
    ? { username: USER.username, password: `${USER.password}-wrong` }
    : USER;
}

export function basicAuth(credentials: Credentials): string {
  const token = Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64');
  return `Basic ${token}`;
}

/**
 * Asks junction, the way `w` says, for a tunnel to host:port. The client is returned open
 * whatever the answer, for the caller to check and destroy.
 */
export async function openTunnel(
  w: Way,
  proxyPort: number,
  host: string,
  port: number,
  credentials: Credentials | undefined,
  timeoutMs: number,
  track: (client: RawClient) => void,
): Promise<Opened> {
  const client = await rawConnect(proxyPort);
  track(client);
  switch (w.kind) {
    case 'connect':
      return connectTunnel(client, host, port, credentials, timeoutMs);
    case 'forward':
      throw new Error('a forwarding way opens no tunnel: send requests (http-client.ts)');
    case 'socks4':
    case 'socks4a':
      return socks4Tunnel(client, w.kind, host, port, timeoutMs);
    case 'socks5':
      return socks5Tunnel(client, host, port, credentials, timeoutMs);
  }
}

async function connectTunnel(
  client: RawClient,
  host: string,
  port: number,
  credentials: Credentials | undefined,
  timeoutMs: number,
): Promise<Opened> {
  const auth = credentials ? `Proxy-Authorization: ${basicAuth(credentials)}\r\n` : '';
  client.write(`CONNECT ${host}:${port} HTTP/1.1\r\nHost: ${host}:${port}\r\n${auth}\r\n`);
  const head = (await client.readUntil('\r\n\r\n', timeoutMs)).toString('latin1');
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1];
  if (status === undefined) throw new Error(`CONNECT answered "${head.slice(0, 40)}"`);
  const challenge = /\r\nProxy-Authenticate: *([^\r]*)\r\n/i.exec(head)?.[1];
  return { client, stage: 'reply', code: Number(status), ok: status === '200', challenge };
}

async function socks4Tunnel(
  client: RawClient,
  kind: 'socks4' | 'socks4a',
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Opened> {
  const portBytes = [port >> 8, port & 0xff];
  if (kind === 'socks4') {
    if (!isIPv4(host)) throw new Error(`SOCKS4 cannot carry the name ${host}`);
    client.write(Buffer.from([4, 1, ...portBytes, ...host.split('.').map(Number), 0]));
  } else {
    const name = Buffer.from(`${host}\0`, 'latin1');
    client.write(Buffer.concat([Buffer.from([4, 1, ...portBytes, 0, 0, 0, 1, 0]), name]));
  }
  const reply = await client.read(8, timeoutMs);
  if (reply[0] !== 0) throw new Error(`SOCKS4 reply VN ${String(reply[0])}, not 0`);
  const code = reply[1] ?? -1;
  return { client, stage: 'reply', code, ok: code === 0x5a };
}

async function socks5Tunnel(
  client: RawClient,
  host: string,
  port: number,
  credentials: Credentials | undefined,
  timeoutMs: number,
): Promise<Opened> {
  const method = credentials ? 0x02 : 0x00;
  client.write(Buffer.from([5, 1, method]));
  const choice = await client.read(2, timeoutMs);
  if (choice[0] !== 5) throw new Error(`SOCKS5 method reply VER ${String(choice[0])}`);
  if (choice[1] !== method) {
    return { client, stage: 'method', code: choice[1] ?? -1, ok: false };
  }
  if (credentials) {
    const user = Buffer.from(credentials.username);
    const pass = Buffer.from(credentials.password);
    client.write(
      Buffer.concat([Buffer.from([1, user.length]), user, Buffer.from([pass.length]), pass]),
    );
    const status = await client.read(2, timeoutMs);
    if (status[0] !== 1) throw new Error(`RFC 1929 reply VER ${String(status[0])}`);
    if (status[1] !== 0) return { client, stage: 'auth', code: status[1] ?? -1, ok: false };
  }
  client.write(socks5Request(host, port));
  const head = await client.read(4, timeoutMs);
  if (head[0] !== 5) throw new Error(`SOCKS5 reply VER ${String(head[0])}`);
  const atyp = head[3];
  const addressLength =
    atyp === 1
      ? 4
      : atyp === 4
        ? 16
        : atyp === 3
          ? ((await client.read(1, timeoutMs))[0] ?? 0)
          : -1;
  if (addressLength < 0) throw new Error(`SOCKS5 reply ATYP ${String(atyp)}`);
  await client.read(addressLength + 2, timeoutMs);
  const code = head[1] ?? -1;
  return { client, stage: 'reply', code, ok: code === 0 };
}
