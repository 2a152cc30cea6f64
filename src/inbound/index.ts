import type { InboundType } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Runtime } from '../session.js';
import type { InboundAccess } from './access.js';
import { createHttpHandler } from './http.js';
import { createListener } from './listener.js';
import { createMixedHandler } from './mixed.js';
import { createSocksHandler } from './socks.js';
import { createTlsHandler } from './tls.js';
import type { Inbound, ProtocolEnv, ProtocolFactory } from './types.js';

const PROTOCOLS = {
  http: (env) => createHttpHandler(env),
  https: (env) => createTlsHandler(env, createHttpHandler(env)),
  socks: (env) => createSocksHandler(env, { socks4: true, socks5: true }),
  socks4: (env) => createSocksHandler(env, { socks4: true, socks5: false }),
  socks5: (env) => createSocksHandler(env, { socks4: false, socks5: true }),
  mixed: (env) => {
    const http = createHttpHandler(env);
    return createMixedHandler(
      createSocksHandler(env, { socks4: true, socks5: true }),
      http,
      // TLS (first byte 0x16) when the inbound has a certificate: HTTP inside it.
      () => (env.config.tls ? createTlsHandler(env, http) : undefined),
    );
  },
} satisfies Record<InboundType, ProtocolFactory>;

/** What every inbound of a gateway shares. */
export interface InboundContext {
  /** Bound to the inbound's name. */
  readonly log: Logger;
  runtime(): Runtime;
  nextId(): string;
}

/** A running inbound whose users and allow list a reload can replace. */
export interface ReloadableInbound extends Inbound {
  /**
   * New connections and sessions use `access` from now on; live ones keep what they were
   * checked against. Its name, type and listen address must be those the inbound started with.
   */
  reconfigure(access: InboundAccess): void;
}

export function createInbound(initial: InboundAccess, context: InboundContext): ReloadableInbound {
  let access = initial;
  const env: ProtocolEnv = {
    get config() {
      return access.config;
    },
    get auth() {
      return access.auth;
    },
    allows: (ip) => access.allows(ip),
    trustsProxyHeaderFrom: (ip) => access.trustsProxyHeaderFrom(ip),
    log: context.log,
    runtime: () => context.runtime(),
    nextId: () => context.nextId(),
  };
  const listener = createListener(env, PROTOCOLS[initial.config.type](env));
  return Object.assign(listener, {
    reconfigure(next: InboundAccess) {
      access = next;
    },
  });
}
