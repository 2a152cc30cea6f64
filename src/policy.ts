import type { BlockList } from 'node:net';
import { cidrSet, ipFamily, parseCidr, type Cidr } from './cidr.js';
import type { Limits } from './config/schema.js';
import type { SelfEndpoints } from './self-endpoints.js';

/**
 * The ranges behind the words of `deny_destinations`. 0.0.0.0/8 and :: are listed as loopback
 * because connecting to them reaches the local host on Linux (a classic way around SSRF filters).
 */
const NAMED_RANGES: Readonly<Record<'private' | 'loopback', readonly string[]>> = {
  loopback: ['127.0.0.0/8', '0.0.0.0/8', '::1/128', '::/128'],
  private: [
    '10.0.0.0/8',
    '172.16.0.0/12',
    '192.168.0.0/16',
    '100.64.0.0/10',
    '169.254.0.0/16',
    'fc00::/7',
    'fe80::/10',
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
  return { allows: (ip) => !contains(blocked, ip), isSelf };
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
