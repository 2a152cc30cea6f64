import { createAuthenticator, type Authenticator } from '../auth.js';
import type { InboundConfig } from '../config/schema.js';
import { parseCidr, type Cidr } from '../cidr.js';
import { createSourceAllowList } from '../policy.js';

/** Without `proxy_protocol_from`, a header is taken from the local host only. */
const LOOPBACK = ['127.0.0.0/8', '::1/128'].map((text) => parseCidr(text) as Cidr);

/**
 * What a reload replaces in a running inbound: its configuration entry, its users and its source
 * allow-list. It is built whole before a reload commits, so a refused reload changes nothing, and
 * a fresh Authenticator keeps nothing of the users it replaces.
 */
export interface InboundAccess {
  readonly config: InboundConfig;
  /** Undefined when the inbound has no `auth`. */
  readonly auth: Authenticator | undefined;
  /** Whether a client address is in `allow` (everyone when there is no list). */
  allows(ip: string): boolean;
  /** Whether a peer may send a PROXY protocol header (`proxy_protocol_from`). */
  trustsProxyHeaderFrom(ip: string): boolean;
}

export function createInboundAccess(config: InboundConfig): InboundAccess {
  return {
    config,
    auth: config.auth ? createAuthenticator(config.auth.users) : undefined,
    allows: createSourceAllowList(config.allow),
    trustsProxyHeaderFrom: createSourceAllowList(config.proxy_protocol_from ?? LOOPBACK),
  };
}
