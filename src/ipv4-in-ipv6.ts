/**
 * IPv6 addresses that carry an IPv4 address, and where: a packet to one of them can end up at
 * that IPv4 address (through a translator, a tunnel or the host's own stack), so the destination
 * policy judges both. The prefixes and bit positions are those of RFC 4291 §2.5.5 (IPv4-mapped
 * and IPv4-compatible), RFC 2765 §2.1 (IPv4-translated), RFC 6052 §2.2 (NAT64, with the local-use
 * prefix of RFC 8215), RFC 3056 §2 (6to4) and RFC 4380 §4 (Teredo: server, and client with every
 * bit inverted).
 */
import { BlockList, isIPv6 } from 'node:net';
import { Address6 } from 'ip-address';

interface Embedding {
  /** The prefix that marks the kind, as a one-subnet list. */
  readonly within: BlockList;
  /** The IPv4 addresses inside, from the address's 16 bytes. */
  readonly extract: (bytes: Buffer) => readonly number[][];
}

const at = (bytes: Buffer, ...offsets: number[]): number[] => offsets.map((i) => bytes[i] ?? 0);
const inverted = (octets: number[]): number[] => octets.map((octet) => ~octet & 0xff);
const lastFour = (bytes: Buffer): number[][] => [at(bytes, 12, 13, 14, 15)];

/** Every kind's prefix in one list: one native lookup decides whether to parse at all. */
const CARRIERS = new BlockList();

function embedding(prefix: string, length: number, extract: Embedding['extract']): Embedding {
  const within = new BlockList();
  within.addSubnet(prefix, length, 'ipv6');
  CARRIERS.addSubnet(prefix, length, 'ipv6');
  return { within, extract };
}

const EMBEDDINGS: readonly Embedding[] = [
  embedding('::', 96, lastFour),
  embedding('::ffff:0:0', 96, lastFour),
  embedding('::ffff:0:0:0', 96, lastFour),
  embedding('64:ff9b::', 96, lastFour),
  // A /48 NAT64 prefix: bits 64-71 are the "u" octet, so the IPv4 address skips byte 8.
  embedding('64:ff9b:1::', 48, (b) => [at(b, 6, 7, 9, 10)]),
  embedding('2002::', 16, (b) => [at(b, 2, 3, 4, 5)]),
  embedding('2001::', 32, (b) => [at(b, 4, 5, 6, 7), inverted(at(b, 12, 13, 14, 15))]),
];

/** The IPv4 addresses an IPv6 address carries (dotted quads); none for any other address. */
export function embeddedIpv4(ip: string): readonly string[] {
  if (!isIPv6(ip) || !CARRIERS.check(ip, 'ipv6')) return [];
  const bytes = Buffer.from(new Address6(ip).canonicalForm().replaceAll(':', ''), 'hex');
  return EMBEDDINGS.filter(({ within }) => within.check(ip, 'ipv6')).flatMap(({ extract }) =>
    extract(bytes).map((octets) => octets.join('.')),
  );
}
