import type { BlockList } from 'node:net';
import { cidrSet, ipFamily, parseCidr, type Cidr } from './cidr.js';
import type { Limits } from './config/schema.js';
import { embeddedIpv4 } from './ipv4-in-ipv6.js';
import type { SelfEndpoints } from './self-endpoints.js';

/**
 * The ranges behind the words of `deny_destinations`. 0.0.0.0/8 and :: are listed as loopback
 * because connecting to them reaches the local host on Linux (a classic way around SSRF filters).
 * `private` is every range that reaches the local networks rather than one host on the internet:
 * private and shared (CGN) space, link-local (cloud metadata), site-local, multicast and the
 * reserved 240.0.0.0/4 with the broadcast address, the IETF protocol block (DS-Lite, NAT64
 * discovery), and the IPv6 prefixes that lead to a translator or tunnel towards an IPv4 address
 * (NAT64, 6to4, Teredo). IPv4-mapped addresses are matched against the IPv4 ranges by BlockList.
 */
const NAMED_RANGES: Readonly<Record<'private' | 'loopback', readonly string[]>> = {
  loopback: ['127.0.0.0/8', '0.0.0.0/8', '::1/128', '::/128'],
  private: [
    '10.0.0.0/8',
    '172.16.0.0/12',
    '192.168.0.0/16',
    '100.64.0.0/10',
    '169.254.0.0/16',
    '192.0.0.0/24',
    '224.0.0.0/4',
    '240.0.0.0/4',
    'fc00::/7',
    'fe80::/10',
    'fec0::/10',
    'ff00::/8',
    '64:ff9b::/96',
    '64:ff9b:1::/48',
    '2002::/16',
    '2001::/32',
  ],
};

/** Decides whether an address may be dialled; checked after DNS, on every address tried. */
export interface DestinationPolicy {
  allows(ip: string): boolean;
  /**
   * True when ip:port is one of junction's own listening sockets: a forwarding loop, refused
   * whatever `deny_destinations` says (see self-endpoints.ts).
   */
  isSelf(ip: string, port: number): boolean;
}

const NOT_SELF = (): boolean => false;

export function createDestinationPolicy(
  deny: Limits['deny_destinations'],
  self?: SelfEndpoints,
): DestinationPolicy {
  const isSelf = self ? (ip: string, port: number) => self.includes(ip, port) : NOT_SELF;
  if (deny.length === 0) return { allows: () => true, isSelf };
  const cidrs: Cidr[] = deny.flatMap((item) =>
    typeof item === 'string' ? NAMED_RANGES[item].map((text) => parseCidr(text) as Cidr) : [item],
  );
  const blocked = cidrSet(cidrs);
  // An address that carries an IPv4 address is denied when that one is (64:ff9b::7f00:1 is
  // 127.0.0.1 behind a NAT64), whichever words or CIDRs the list has.
  const denies = (ip: string): boolean =>
    contains(blocked, ip) || embeddedIpv4(ip).some((v4) => contains(blocked, v4));
  return { allows: (ip) => !denies(ip), isSelf };
}

/** A client source allow-list; an absent list admits everyone. */
export function createSourceAllowList(allow: readonly Cidr[] | undefined): (ip: string) => boolean {
  if (!allow) return () => true;
  const allowed = cidrSet(allow);
  return (ip) => contains(allowed, ip);
}

function contains(list: BlockList, ip: string): boolean {
  return list.check(ip, ipFamily(ip));
}
