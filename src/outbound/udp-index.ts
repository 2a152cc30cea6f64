import type { OutboundConfig } from '../config/schema.js';
import { maskUrl, parseOutboundUrl, type ProxyUrl } from '../config/url.js';
import type { DestinationPolicy } from '../policy.js';
import { formatTarget } from '../target.js';
import { createDirectUdp } from './udp-direct.js';
import { createSocks5Udp } from './udp-socks5.js';
import type { UdpOutbound } from './udp-types.js';

/**
 * The UDP side of every outbound of a configuration, by name. `undefined` means "this outbound
 * cannot carry UDP": http and https proxies have no UDP at all, SOCKS4 neither, and a chain of
 * more than one proxy cannot, since a datagram cannot be tunnelled through the first proxy's TCP
 * stream to reach the second's UDP relay. A chain that flattens to no proxy is direct, to exactly
 * one SOCKS5 proxy is that proxy. A fallback group cannot carry UDP either: its health state is
 * about TCP, and sending datagrams to a member other than the one TCP would use could bypass
 * the proxy the group prefers (`fallback: [corp, direct]` would send all UDP direct).
 */
export function createUdpOutbounds(
  configs: readonly OutboundConfig[],
  policy: DestinationPolicy,
): Map<string, UdpOutbound | undefined> {
  const udp = new Map<string, UdpOutbound | undefined>([
    ['direct', createDirectUdp(policy)],
    ['reject', createRejectUdp()],
  ]);
  const byName = new Map(configs.map((config) => [config.name, config]));
  /** The proxy URLs an outbound goes through, first first; undefined when it cannot be told. */
  const urlsOf = (name: string, seen: ReadonlySet<string>): string[] | undefined => {
    if (name === 'direct') return [];
    const config = byName.get(name);
    // The schema refuses cycles; `seen` only keeps this function finite whatever it is given.
    if (!config || seen.has(name)) return undefined;
    if (config.url !== undefined) return [config.url];
    if (!config.chain) return undefined;
    const urls: string[] = [];
    for (const member of config.chain) {
      const more = urlsOf(member, new Set([...seen, name]));
      if (!more) return undefined;
      urls.push(...more);
    }
    return urls;
  };
  for (const config of configs) {
    const urls = urlsOf(config.name, new Set());
    let outbound: UdpOutbound | undefined;
    if (urls?.length === 0) outbound = createDirectUdp(policy, config.name);
    else if (urls?.length === 1) outbound = fromUrl(urls[0] ?? '', policy, config.name);
    udp.set(config.name, outbound);
  }
  return udp;
}

function fromUrl(url: string, policy: DestinationPolicy, name: string): UdpOutbound | undefined {
  const parsed = parseOutboundUrl(url);
  const proxy = parsed.value;
  if (proxy?.scheme !== 'socks5' && proxy?.scheme !== 'socks5h') return undefined;
  const socks = proxy as ProxyUrl<'socks5' | 'socks5h'>;
  return createSocks5Udp(socks, maskUrl(url.trim()), policy, name);
}

/** `reject`: every datagram is dropped and counted as rejected by rule. */
function createRejectUdp(): UdpOutbound {
  return {
    name: 'reject',
    open(context) {
      return Promise.resolve({
        send(target) {
          context.dropped('rejected', `${formatTarget(target)}: rejected by rule`);
        },
        onMessage() {
          // Nothing is ever sent, so nothing comes back.
        },
        close() {
          // Nothing to close.
        },
      });
    },
  };
}
