import { isIP } from 'node:net';
import { cidrSet, formatCidr, ipFamily, type Cidr } from '../../cidr.js';
import type { Matcher } from './types.js';
import { listText } from './text.js';

/**
 * `ip_cidr` and `source_cidr`: an IP address inside any of the subnets. BlockList also puts
 * `::ffff:10.1.2.3` (how sockets report v4 peers on dual-stack listeners) inside 10.0.0.0/8.
 */
export function cidrMatcher(key: string, cidrs: readonly Cidr[]): Matcher<string> {
  const subnets = cidrSet(cidrs);
  return {
    text: listText(key, cidrs.map(formatCidr)),
    // A resolver may hand back anything; a non-address is simply outside every subnet.
    matches: (ip) => isIP(ip) !== 0 && subnets.check(ip, ipFamily(ip)),
  };
}
