/**
 * SOCKS wire format, pure (no sockets).
 * - SOCKS4 and SOCKS4a have no RFC: Ying-Da Lee's "SOCKS: A protocol for TCP proxy across
 *   firewalls" (request VN CD DSTPORT DSTIP USERID NUL, reply VN=0 CD DSTPORT DSTIP) and
 *   "SOCKS 4A" (DSTIP 0.0.0.x with x != 0, then HOSTNAME NUL).
 * - SOCKS5: RFC 1928 §3 greeting, §4 request, §5 addressing, §6 replies; RFC 1929 §2
 *   username/password sub-negotiation.
 * Parsers take the bytes received so far, so a bounded reader can call them as bytes arrive, and
 * answer as early as the bytes allow: garbage is an error before the rest of it has arrived.
 */
import { Address6 } from 'ip-address';
import type { ErrorCode } from '../errors.js';
import { hostFromBytes, parseHost, type Host, type Target } from '../target.js';

export type Parsed<T> =
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'ok'; readonly value: T; readonly consumed: number }
  | { readonly kind: 'error'; readonly code: ErrorCode; readonly reason: string };

export type Parser<T> = (bytes: Buffer) => Parsed<T>;

const INCOMPLETE = { kind: 'incomplete' } as const;
const ok = <T>(value: T, consumed: number): Parsed<T> => ({ kind: 'ok', value, consumed });
const fail = (code: ErrorCode, reason: string) => ({ kind: 'error', code, reason }) as const;

export const SOCKS4_VERSION = 0x04;
export const SOCKS5_VERSION = 0x05;
/** RFC 1929 §2: the sub-negotiation has its own version byte. */
const USER_PASS_VERSION = 0x01;
/** Neither protocol lets a name, user id or password be longer than one length byte allows. */
const MAX_STRING = 255;

export const METHOD = { noAuth: 0x00, userPass: 0x02, noneAcceptable: 0xff } as const;
export const SOCKS4_GRANTED = 0x5a;

export type SocksCommand = 'connect' | 'bind' | 'udp-associate';
const COMMAND_CODES = { connect: 0x01, bind: 0x02, 'udp-associate': 0x03 } as const;
/** Indexed by CMD; SOCKS4 has the first two. */
const COMMANDS = [undefined, 'connect', 'bind', 'udp-associate'] as const;
const ATYP = { ipv4: 0x01, domain: 0x03, ipv6: 0x04 } as const;

export const UNSPECIFIED: Target = { host: { kind: 'ipv4', ip: '0.0.0.0' }, port: 0 };

/** The first byte names the protocol version; nothing is consumed. */
export function peekVersion(bytes: Buffer): Parsed<number> {
  const version = bytes[0];
  return version === undefined ? INCOMPLETE : ok(version, 0);
}

/** RFC 1928 §3: VER NMETHODS METHODS. NMETHODS 0 parses (to no method, so 0xFF is the answer). */
export function parseSocks5Greeting(bytes: Buffer): Parsed<readonly number[]> {
  if (bytes.length >= 1 && bytes[0] !== SOCKS5_VERSION) {
    return fail('BAD_REQUEST', 'greeting is not SOCKS5');
  }
  const count = bytes[1];
  if (count === undefined || bytes.length < 2 + count) return INCOMPLETE;
  return ok([...bytes.subarray(2, 2 + count)], 2 + count);
}

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

/** RFC 1929 §2: VER ULEN UNAME PLEN PASSWD. */
export function parseCredentials(bytes: Buffer): Parsed<Credentials> {
  if (bytes.length >= 1 && bytes[0] !== USER_PASS_VERSION) {
    return fail('BAD_REQUEST', 'username/password sub-negotiation has a bad version');
  }
  const userLength = bytes[1];
  if (userLength === undefined) return INCOMPLETE;
  const passwordLength = bytes[2 + userLength];
  if (passwordLength === undefined) return INCOMPLETE;
  const end = 3 + userLength + passwordLength;
  if (bytes.length < end) return INCOMPLETE;
  const username = bytes.toString('utf8', 2, 2 + userLength);
  return ok({ username, password: bytes.toString('utf8', 3 + userLength, end) }, end);
}

export interface SocksRequest {
  readonly command: SocksCommand;
  readonly target: Target;
}

/** RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is ignored, as most servers do. */
export function parseSocks5Request(bytes: Buffer): Parsed<SocksRequest> {
  if (bytes.length >= 1 && bytes[0] !== SOCKS5_VERSION) {
    return fail('BAD_REQUEST', 'request is not SOCKS5');
  }
  const code = bytes[1];
  if (code === undefined) return INCOMPLETE;
  const command = COMMANDS[code];
  if (!command) return fail('CMD_UNSUPPORTED', `command ${code} is not supported`);
  // A UDP ASSOCIATE's address is only where the client says it will send from, and some
  // clients (PySocks) write a placeholder name such as "0" there: read it as "unspecified".
  const address = parseSocks5Address(bytes, 3, command === 'udp-associate');
  if (address.kind !== 'ok') return address;
  return ok({ command, target: address.value }, 3 + address.consumed);
}

/** RFC 1928 §5 ATYP DST.ADDR then DST.PORT, from `offset`; `consumed` counts from `offset`. */
export function parseSocks5Address(
  bytes: Buffer,
  offset: number,
  badNameIsUnspecified = false,
): Parsed<Target> {
  const type = bytes[offset];
  if (type === undefined) return INCOMPLETE;
  let start = offset + 1;
  let length: number;
  if (type === ATYP.ipv4) length = 4;
  else if (type === ATYP.ipv6) length = 16;
  else if (type === ATYP.domain) {
    const nameLength = bytes[start];
    if (nameLength === undefined) return INCOMPLETE;
    length = nameLength;
    start += 1;
  } else return fail('ATYP_UNSUPPORTED', `address type ${type} is not supported`);
  const end = start + length + 2;
  if (bytes.length < end) return INCOMPLETE;
  const raw = bytes.subarray(start, start + length);
  // A name goes through parseHost like every other host: invalid names never reach rules or DNS.
  let host = type === ATYP.domain ? parseHost(raw.toString('latin1')) : hostFromBytes(raw);
  if (!host && badNameIsUnspecified) host = UNSPECIFIED.host;
  if (!host) return fail('BAD_REQUEST', 'invalid host name');
  return ok({ host, port: bytes.readUInt16BE(start + length) }, end - offset);
}

/** SOCKS4: VN CD DSTPORT DSTIP USERID NUL, and for 4a (DSTIP 0.0.0.x, x != 0) HOSTNAME NUL. */
export function parseSocks4Request(bytes: Buffer): Parsed<SocksRequest> {
  if (bytes.length >= 1 && bytes[0] !== SOCKS4_VERSION) {
    return fail('BAD_REQUEST', 'request is not SOCKS4');
  }
  const code = bytes[1];
  if (code === undefined) return INCOMPLETE;
  const command = code <= COMMAND_CODES.bind ? COMMANDS[code] : undefined;
  if (!command) return fail('CMD_UNSUPPORTED', `command ${code} is not supported`);
  if (bytes.length < 8) return INCOMPLETE;
  const port = bytes.readUInt16BE(2);
  const ip = bytes.subarray(4, 8);
  // The USERID is skipped, never decoded: it is not a credential and is recorded nowhere.
  const userIdEnd = nulIndex(bytes, 8, 'user id');
  if (typeof userIdEnd !== 'number') return userIdEnd;
  const isSocks4a = ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0;
  if (!isSocks4a) return ok({ command, target: { host: hostFromBytes(ip), port } }, userIdEnd + 1);
  const nameEnd = nulIndex(bytes, userIdEnd + 1, 'host name');
  if (typeof nameEnd !== 'number') return nameEnd;
  const host = parseHost(bytes.toString('latin1', userIdEnd + 1, nameEnd));
  if (!host) return fail('BAD_REQUEST', 'invalid host name');
  return ok({ command, target: { host, port } }, nameEnd + 1);
}

/** Where the NUL that ends a string starting at `start` is; at most MAX_STRING bytes may precede it. */
function nulIndex(bytes: Buffer, start: number, what: string): number | Parsed<never> {
  const at = bytes.indexOf(0, start);
  if (at >= 0 && at - start <= MAX_STRING) return at;
  if (at < 0 && bytes.length - start <= MAX_STRING) return INCOMPLETE;
  return fail('BAD_REQUEST', `${what} longer than ${MAX_STRING} bytes`);
}

/** RFC 1928 §4 request, for clients of this codec (tests, an upstream SOCKS5 hop). */
export function encodeSocks5Request(command: SocksCommand, target: Target): Buffer {
  const head = Buffer.from([SOCKS5_VERSION, COMMAND_CODES[command], 0x00]);
  return Buffer.concat([head, encodeSocks5Address(target)]);
}

/** RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT. */
export function encodeSocks5Reply(reply: number, bound: Target = UNSPECIFIED): Buffer {
  const address = addressBytes(bound.host);
  // One buffer per reply: a reply is written for every session.
  const bytes = Buffer.allocUnsafe(3 + address.length + 2);
  bytes[0] = SOCKS5_VERSION;
  bytes[1] = reply;
  bytes[2] = 0x00;
  writeAddress(bytes, 3, address, bound.port);
  return bytes;
}

/** RFC 1928 §5: ATYP ADDR PORT. */
export function encodeSocks5Address({ host, port }: Target): Buffer {
  const address = addressBytes(host);
  const bytes = Buffer.allocUnsafe(address.length + 2);
  writeAddress(bytes, 0, address, port);
  return bytes;
}

function writeAddress(
  into: Buffer,
  at: number,
  address: readonly number[] | Buffer,
  port: number,
): void {
  into.set(address, at);
  into.writeUInt16BE(port, at + address.length);
}

/** ATYP and ADDR. */
function addressBytes(host: Host): readonly number[] | Buffer {
  if (host.kind === 'ipv4') return [ATYP.ipv4, ...ipv4Bytes(host.ip)];
  if (host.kind === 'domain') {
    const name = Buffer.from(host.name, 'latin1');
    if (name.length > MAX_STRING) throw new RangeError('a SOCKS5 host name is at most 255 bytes');
    return Buffer.concat([Buffer.from([ATYP.domain, name.length]), name]);
  }
  const hex = new Address6(host.ip).canonicalForm().replaceAll(':', '');
  return Buffer.concat([Buffer.from([ATYP.ipv6]), Buffer.from(hex, 'hex')]);
}

/** SOCKS4 reply: VN=0 CD DSTPORT DSTIP. Only an IPv4 bound address fits; anything else is zeros. */
export function encodeSocks4Reply(code: number, bound: Target = UNSPECIFIED): Buffer {
  const reply = Buffer.alloc(8);
  reply[1] = code;
  if (bound.host.kind === 'ipv4') {
    reply.writeUInt16BE(bound.port, 2);
    reply.set(ipv4Bytes(bound.host.ip), 4);
  }
  return reply;
}

function ipv4Bytes(ip: string): number[] {
  return ip.split('.').map(Number);
}
