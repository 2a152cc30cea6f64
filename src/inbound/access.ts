import { createAuthenticator, type Authenticator } from '../auth.js';
import type { InboundConfig } from '../config/schema.js';
import { createSourceAllowList } from '../policy.js';

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
}

export function createInboundAccess(config: InboundConfig): InboundAccess {
  return {
    config,
    auth: config.auth ? createAuthenticator(config.auth.users) : undefined,
    allows: createSourceAllowList(config.allow),
  };
}
