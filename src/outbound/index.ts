import type { OutboundConfig } from '../config/schema.js';
import { maskUrl, parseOutboundUrl, type ProxyUrl } from '../config/url.js';
import type { DestinationPolicy } from '../policy.js';
import { createChainOutbound } from './chain.js';
import { createDirectOutbound } from './direct.js';
import { createHttpHop } from './http-hop.js';
import { createRejectOutbound } from './reject.js';
import { createSocksHop } from './socks-hop.js';
import type { Hop, Outbound } from './types.js';

/**
 * Builds every outbound of a configuration, plus the built-in `direct` and `reject`. A `url:`
 * outbound is a chain of one hop; a chain's members are flattened into its hops (`direct`
 * adds none).
 */
export function createOutbounds(
  configs: readonly OutboundConfig[],
  policy: DestinationPolicy,
): Map<string, Outbound> {
  const outbounds = new Map<string, Outbound>([
    ['direct', createDirectOutbound(policy)],
    ['reject', createRejectOutbound()],
  ]);
  const byName = new Map(configs.map((config) => [config.name, config]));
  const hopsByName = new Map<string, readonly Hop[]>();
  // The schema has already refused unknown names and cycles.
  const hopsOf = (name: string, usedBy: string): readonly Hop[] => {
    if (name === 'direct') return [];
    const known = hopsByName.get(name);
    if (known) return known;
    const config = byName.get(name);
    if (!config || name === 'reject') {
      throw new Error(`outbound "${usedBy}": "${name}" cannot be part of a chain`);
    }
    let hops: readonly Hop[];
    if (config.url !== undefined) hops = [createHop(config.url, config.tls)];
    else if (config.chain) hops = config.chain.flatMap((member) => hopsOf(member, name));
    else throw notYet(name);
    hopsByName.set(name, hops);
    return hops;
  };
  for (const config of configs) {
    if (config.fallback) throw notYet(config.name);
    outbounds.set(
      config.name,
      createChainOutbound(config.name, hopsOf(config.name, config.name), policy),
    );
  }
  return outbounds;
}

function notYet(name: string): Error {
  return new Error(`outbound "${name}": fallback groups are not supported yet`);
}

function createHop(url: string, tls: OutboundConfig['tls']): Hop {
  const parsed = parseOutboundUrl(url);
  // Validated by the schema; a failure here would be a bug.
  if (parsed.error !== undefined) throw new Error(parsed.error);
  const proxy = parsed.value;
  const label = maskUrl(url.trim());
  if (isHttp(proxy)) {
    return createHttpHop(proxy, label, {
      ca: tls?.ca,
      servername: tls?.servername,
      insecure: tls?.insecure,
    });
  }
  return createSocksHop(proxy as ProxyUrl<'socks4' | 'socks4a' | 'socks5' | 'socks5h'>, label);
}

function isHttp(proxy: ProxyUrl<string>): proxy is ProxyUrl<'http' | 'https'> {
  return proxy.scheme === 'http' || proxy.scheme === 'https';
}
