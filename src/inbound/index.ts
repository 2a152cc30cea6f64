import type { InboundType } from '../config/schema.js';
import { createHttpHandler } from './http.js';
import { createListener } from './listener.js';
import { createMixedHandler } from './mixed.js';
import { createSocksHandler } from './socks.js';
import type { Inbound, ProtocolEnv, ProtocolFactory } from './types.js';

const PROTOCOLS = {
  http: (env) => createHttpHandler(env),
  socks: (env) => createSocksHandler(env, { socks4: true, socks5: true }),
  socks4: (env) => createSocksHandler(env, { socks4: true, socks5: false }),
  socks5: (env) => createSocksHandler(env, { socks4: false, socks5: true }),
  mixed: (env) =>
    createMixedHandler(
      createSocksHandler(env, { socks4: true, socks5: true }),
      createHttpHandler(env),
    ),
} satisfies Record<InboundType, ProtocolFactory>;

export function createInbound(env: ProtocolEnv): Inbound {
  return createListener(env, PROTOCOLS[env.config.type](env));
}
