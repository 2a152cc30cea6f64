/**
 * The PROXY protocol, pure (no sockets): HAProxy's "The PROXY protocol, Versions 1 & 2"
 * (haproxy.org/download/2.9/doc/proxy-protocol.txt). §2.1 the human-readable header (v1),
 * §2.2 the binary header (v2) with its TLV vectors (§2.2.7, checked for framing, not read).
 * A load balancer sends one header first on a connection to say whose connection it is.
 * The parser takes the bytes received so far, like the SOCKS codec, and decides as early as the
 * bytes allow: a first byte that cannot begin a header means "no header" at once.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { hostFromBytes, hostToString, parseHost } from '../target.js';
import type { Parsed } from './socks-codec.js';

export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

export type ProxyHeader =
  /** PROXY: the connection is the load balancer's client's, from `source` to `destination`. */
  | {
      readonly version: 1 | 2;
      readonly command: 'proxy';
      readonly source: Endpoint;
      readonly destination: Endpoint;
    }
  /**
   * v2 LOCAL (the balancer's own health check), v1 UNKNOWN, or an address family that has no
   * IP (AF_UNSPEC, AF_UNIX): the connection's own addresses stand.
   */
  | { readonly version: 1 | 2; readonly command: 'local' };

/** §2.1: "PROXY " … CRLF is at most 107 bytes. */
export const V1_MAX_BYTES = 107;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** §2.2: the 12-byte signature that cannot begin an HTTP, SOCKS or TLS stream. */
export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V2_FIXED_BYTES = 16;
/**
 * The length field allows 64 KiB of addresses and TLVs; balancers send a few dozen bytes (an
 * AWS VPC endpoint id, a TLS version). A longer header is refused rather than buffered.
 */
export const V2_MAX_TLV_BYTES = 4096;
/** The most bytes the parser may need before it decides. */
export const MAX_HEADER_BYTES = V2_FIXED_BYTES + 216 + V2_MAX_TLV_BYTES;

const INCOMPLETE = { kind: 'incomplete' } as const;
const ok = <T>(value: T, consumed: number): Parsed<T> => ({ kind: 'ok', value, consumed });
const fail = (reason: string) => ({ kind: 'error', code: 'BAD_REQUEST', reason }) as const;

/**
 * A header at the start of `bytes`, or `undefined` (consuming nothing) when the bytes cannot be
 * one: then they are the inbound protocol's own.
 */
export function parseProxyHeader(bytes: Buffer): Parsed<ProxyHeader | undefined> {
  const v1 = startsWith(bytes, V1_PREFIX);
  const v2 = startsWith(bytes, V2_SIGNATURE);
  if (v1 === true) return parseV1(bytes);
  if (v2 === true) return parseV2(bytes);
  return v1 === false && v2 === false ? ok(undefined, 0) : INCOMPLETE;
}

/** True when `bytes` begin with `prefix`, false when they cannot, undefined while too few have arrived to tell. */
function startsWith(bytes: Buffer, prefix: Buffer): boolean | undefined {
  const n = Math.min(bytes.length, prefix.length);
  if (bytes.compare(prefix, 0, n, 0, n) !== 0) return false;
  return n === prefix.length ? true : undefined;
}

/** §2.1: PROXY TCP4|TCP6 SRC DST SPORT DPORT CRLF, or PROXY UNKNOWN[ anything] CRLF. */
function parseV1(bytes: Buffer): Parsed<ProxyHeader> {
  const searched = Math.min(bytes.length, V1_MAX_BYTES);
  const cr = bytes.subarray(0, searched).indexOf('\r\n', 0, 'latin1');
  if (cr < 0) return bytes.length >= V1_MAX_BYTES ? fail('v1 header without CRLF') : INCOMPLETE;
  const line = bytes.toString('latin1', V1_PREFIX.length, cr);
  const consumed = cr + 2;
  const [protocol, ...fields] = line.split(' ');
  if (protocol === 'UNKNOWN') return ok({ version: 1, command: 'local' }, consumed);
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return fail('v1 header: unknown protocol');
  const [src, dst, sport, dport, extra] = fields;
  if (extra !== undefined || dport === undefined) return fail('v1 header: wrong field count');
  const isFamily = protocol === 'TCP4' ? isIPv4 : isIPv6;
  if (!isFamily(src ?? '') || !isFamily(dst ?? '')) return fail('v1 header: bad address');
  const sourcePort = port(sport);
  const destinationPort = port(dport);
  if (sourcePort === undefined || destinationPort === undefined) return fail('v1 header: bad port');
  return ok(
    {
      version: 1,
      command: 'proxy',
      source: { ip: canonicalIp(src ?? ''), port: sourcePort },
      destination: { ip: canonicalIp(dst ?? ''), port: destinationPort },
    },
    consumed,
  );
}

/** One spelling per address (`0:0::1` is `::1`), as a v2 header's would be. */
function canonicalIp(text: string): string {
  const host = parseHost(text);
  return host ? hostToString(host) : text;
}

function port(text: string | undefined): number | undefined {
  if (text === undefined || !/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const value = Number(text);
  return value <= 65535 ? value : undefined;
}

/** §2.2: the address lengths of AF_INET, AF_INET6 and AF_UNIX, by the family's high nibble. */
const ADDRESS_BYTES: Readonly<Record<number, number>> = { 0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216 };

/** §2.2: SIG(12) VER_CMD FAM LEN(2) ADDRESSES TLVS. */
function parseV2(bytes: Buffer): Parsed<ProxyHeader> {
  const versionCommand = bytes[12];
  const family = bytes[13];
  if (versionCommand === undefined) return INCOMPLETE;
  if (versionCommand >> 4 !== 2) return fail('v2 header: unknown version');
  const command = versionCommand & 0x0f;
  if (command > 1) return fail('v2 header: unknown command');
  if (family === undefined || bytes.length < V2_FIXED_BYTES) return INCOMPLETE;
  const addressBytes = ADDRESS_BYTES[family >> 4];
  const transport = family & 0x0f;
  // §2.2: 0x00 and the STREAM/DGRAM pairs of the three families; anything else is invalid.
  if (addressBytes === undefined || transport > 2 || (transport === 0) !== (family === 0))
    return fail('v2 header: unknown address family');
  const length = bytes.readUInt16BE(14);
  if (length > addressBytes + V2_MAX_TLV_BYTES) return fail('v2 header: too long');
  if (length < addressBytes) return fail('v2 header: shorter than its addresses');
  const end = V2_FIXED_BYTES + length;
  if (bytes.length < end) return INCOMPLETE;
  if (!tlvsFit(bytes.subarray(V2_FIXED_BYTES + addressBytes, end)))
    return fail('v2 header: malformed TLV');
  // §2.2: a LOCAL connection's addresses, and those of AF_UNSPEC and AF_UNIX, are ignored.
  if (command === 0 || addressBytes === 0 || addressBytes === 216)
    return ok({ version: 2, command: 'local' }, end);
  if (transport !== 1) return fail('v2 header: not a stream connection');
  const ipBytes = (addressBytes - 4) / 2;
  const at = V2_FIXED_BYTES;
  const ip = (offset: number): string =>
    normaliseIp(hostToString(hostFromBytes(bytes.subarray(offset, offset + ipBytes))));
  return ok(
    {
      version: 2,
      command: 'proxy',
      source: { ip: ip(at), port: bytes.readUInt16BE(at + 2 * ipBytes) },
      destination: { ip: ip(at + ipBytes), port: bytes.readUInt16BE(at + 2 * ipBytes + 2) },
    },
    end,
  );
}

/** §2.2.7: TYPE(1) LENGTH(2) VALUE, each one wholly inside the header. */
function tlvsFit(tlvs: Buffer): boolean {
  let at = 0;
  while (at < tlvs.length) {
    if (at + 3 > tlvs.length) return false;
    at += 3 + tlvs.readUInt16BE(at + 1);
  }
  return at === tlvs.length;
}

/** `::ffff:10.1.2.3` is the IPv4 client 10.1.2.3, as the listener spells socket addresses. */
export function normaliseIp(ip: string): string {
  return ip.toLowerCase().startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

/**
 * The header a connection towards an upstream starts with. Without a client (a health check's
 * own connection) it is v2 LOCAL or v1 UNKNOWN. Both ends are given in one family: an IPv4
 * end beside an IPv6 one is sent as its IPv4-mapped IPv6 address.
 */
export function encodeProxyHeader(
  version: 1 | 2,
  source: Endpoint | undefined,
  destination: Endpoint | undefined,
): Buffer {
  const ends = source && destination ? sameFamily(source, destination) : undefined;
  if (version === 1) {
    if (!ends) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    const [src, dst] = ends;
    const protocol = isIPv4(src.ip) ? 'TCP4' : 'TCP6';
    return Buffer.from(
      `PROXY ${protocol} ${src.ip} ${dst.ip} ${src.port} ${dst.port}\r\n`,
      'latin1',
    );
  }
  if (!ends) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const [src, dst] = ends;
  const v4 = isIPv4(src.ip);
  const addresses = Buffer.concat([ipBytes(src.ip), ipBytes(dst.ip), portBytes(src, dst)]);
  const fixed = Buffer.from([0x21, v4 ? 0x11 : 0x21, 0, 0]);
  fixed.writeUInt16BE(addresses.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, addresses]);
}

function sameFamily(a: Endpoint, b: Endpoint): readonly [Endpoint, Endpoint] {
  if (isIPv4(a.ip) === isIPv4(b.ip)) return [a, b];
  const mapped = (e: Endpoint): Endpoint => (isIPv4(e.ip) ? { ...e, ip: `::ffff:${e.ip}` } : e);
  return [mapped(a), mapped(b)];
}

function portBytes(src: Endpoint, dst: Endpoint): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt16BE(src.port, 0);
  bytes.writeUInt16BE(dst.port, 2);
  return bytes;
}

function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const bytes = Buffer.alloc(16);
  // A link-local address names its interface (fe80::1%eth0): not part of the address.
  ip = ip.replace(/%.*$/, '');
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(ip)?.[1];
  const text = dotted ? ip.slice(0, -dotted.length) + v4Groups(dotted) : ip;
  const [head = '', tail] = text.split('::');
  const groups = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((g) => parseInt(g, 16));
  const first = groups(head);
  const last = tail === undefined ? [] : groups(tail);
  const all = [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
  all.forEach((group, i) => bytes.writeUInt16BE(group, 2 * i));
  return bytes;
}

function v4Groups(dotted: string): string {
  const [a = 0, b = 0, c = 0, d = 0] = dotted.split('.').map(Number);
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}
