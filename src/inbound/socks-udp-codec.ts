/**
 * RFC 1928 §7: the UDP request header that wraps every datagram between a SOCKS5 client and its
 * UDP relay, both ways: RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA. Pure (no sockets), and strict,
 * because every byte comes from the network: RSV must be 0, ATYP 1, 3 or 4 only, a truncated
 * header or an invalid name is an error, and nothing here throws. (The `socks` package's
 * parseUDPFrame reads past the end of short frames and takes any ATYP as a name.)
 */
import { Address6 } from 'ip-address';
import type { Target } from '../target.js';
import { parseSocks5Address } from './socks-codec.js';

export interface UdpDatagram {
  /** RFC 1928 §7 fragment number: 0 is a whole datagram; anything else is a fragment. */
  readonly frag: number;
  /** DST.ADDR/DST.PORT: where a client's datagram goes, or where a relayed reply came from. */
  readonly target: Target;
  /** The datagram's data: a view into the frame, not a copy. */
  readonly payload: Buffer;
}

export type UdpParsed =
  | { readonly kind: 'ok'; readonly value: UdpDatagram }
  | { readonly kind: 'error'; readonly reason: string };

/** The largest UDP payload over IPv4 (65,535 - 20 - 8): a wrapped datagram must fit in it. */
export const MAX_UDP_PAYLOAD = 65_507;

/** The fixed part: RSV RSV FRAG. */
const FIXED = 3;
const ATYP = { ipv4: 0x01, domain: 0x03, ipv6: 0x04 } as const;
/** A host name in ATYP 3 has a one-byte length. */
const MAX_NAME = 255;

const fail = (reason: string): UdpParsed => ({ kind: 'error', reason });

/** Parses one whole datagram (UDP keeps message boundaries: there is no "incomplete"). */
export function parseUdpDatagram(frame: Buffer): UdpParsed {
  if (frame.length < FIXED + 1) return fail('datagram shorter than the SOCKS5 UDP header');
  if (frame[0] !== 0 || frame[1] !== 0) return fail('RSV is not zero');
  const frag = frame[2] ?? 0;
  let address;
  try {
    address = parseSocks5Address(frame, FIXED);
  } catch {
    // parseSocks5Address does not throw on any input the fuzz tests found; this is the guarantee.
    return fail('unparseable address');
  }
  if (address.kind === 'incomplete') return fail('datagram truncated inside its address');
  if (address.kind === 'error') return fail(address.reason);
  const { value: target, consumed } = address;
  if (target.port === 0) return fail('port 0 is not a destination');
  return { kind: 'ok', value: { frag, target, payload: frame.subarray(FIXED + consumed) } };
}

/**
 * The header for a datagram to or from `target` (FRAG 0), in one allocation of its exact size;
 * the payload is sent after it as a second buffer (`socket.send([header, payload])`), not copied.
 * Throws RangeError only for a host name longer than 255 bytes, which parseHost never produces.
 */
export function encodeUdpHeader(target: Target): Buffer {
  const { host, port } = target;
  let header: Buffer;
  if (host.kind === 'domain') {
    const length = Buffer.byteLength(host.name, 'latin1');
    if (length > MAX_NAME) throw new RangeError('a SOCKS5 host name is at most 255 bytes');
    header = Buffer.alloc(FIXED + 2 + length + 2);
    header[FIXED] = ATYP.domain;
    header[FIXED + 1] = length;
    header.write(host.name, FIXED + 2, length, 'latin1');
  } else if (host.kind === 'ipv4') {
    header = Buffer.alloc(FIXED + 1 + 4 + 2);
    header[FIXED] = ATYP.ipv4;
    writeIpv4(header, FIXED + 1, host.ip);
  } else {
    header = Buffer.alloc(FIXED + 1 + 16 + 2);
    header[FIXED] = ATYP.ipv6;
    const hex = new Address6(host.ip).canonicalForm().replaceAll(':', '');
    header.write(hex, FIXED + 1, 16, 'hex');
  }
  header.writeUInt16BE(port, header.length - 2);
  return header;
}

/** A whole frame (header and payload in one buffer), for tests and callers that need one. */
export function encodeUdpDatagram(target: Target, payload: Buffer, frag = 0): Buffer {
  const header = encodeUdpHeader(target);
  header[2] = frag;
  return Buffer.concat([header, payload]);
}

function writeIpv4(buffer: Buffer, offset: number, ip: string): void {
  let at = offset;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 0x2e) {
      buffer[at++] = octet;
      octet = 0;
    } else {
      octet = octet * 10 + (c - 0x30);
    }
  }
  buffer[at] = octet;
}
