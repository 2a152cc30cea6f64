import type { OutboundConfig } from '../config/schema.js';
import type { DestinationPolicy } from '../policy.js';
import { createDirectOutbound } from './direct.js';
import { createRejectOutbound } from './reject.js';
import type { Outbound } from './types.js';

/** Builds every outbound of a configuration, plus the built-in `direct` and `reject`. */
export function createOutbounds(
  configs: readonly OutboundConfig[],
  policy: DestinationPolicy,
): Map<string, Outbound> {
  const outbounds = new Map<string, Outbound>([
    ['direct', createDirectOutbound(policy)],
    ['reject', createRejectOutbound()],
  ]);
  for (const config of configs) {
    throw new Error(
      `outbound "${config.name}": upstream proxies, chains and fallback groups are not supported yet`,
    );
  }
  return outbounds;
}
