import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createAuthenticator } from './auth.js';
import type { Config, InboundConfig } from './config/schema.js';
import { ProxyError } from './errors.js';
import { createInbound } from './inbound/index.js';
import type { Inbound } from './inbound/types.js';
import type { Logger } from './log.js';
import { createOutbounds } from './outbound/index.js';
import { createDestinationPolicy } from './policy.js';
import { createRouter } from './route/router.js';
import type { Runtime } from './session.js';
import { formatTarget } from './target.js';

export interface Gateway {
  /** Starts every inbound; resolves with the addresses actually bound (port 0 → a free port). */
  start(): Promise<ReadonlyMap<string, AddressInfo>>;
  /** New sessions use the new configuration; live ones keep theirs. Inbound listeners are kept. */
  reload(config: Config): void;
  /** Stops accepting, waits up to `graceMs` for live sessions, then closes the rest. */
  stop(graceMs?: number): Promise<void>;
  readonly config: Config;
  /** Client connections open now, over every inbound. */
  readonly activeConnections: number;
}

export function buildRuntime(config: Config): Runtime {
  const policy = createDestinationPolicy(config.limits.deny_destinations);
  return {
    router: createRouter(config.rules),
    outbounds: createOutbounds(config.outbounds, policy),
    limits: config.limits,
    accessLog: config.log.access,
  };
}

export function createGateway(initial: Config, log: Logger): Gateway {
  let config = initial;
  let runtime = buildRuntime(config);
  const idPrefix = randomBytes(3).toString('hex');
  let sequence = 0;
  const nextId = (): string => `${idPrefix}-${(++sequence).toString(36)}`;

  const inbounds: Inbound[] = config.inbounds.map((inboundConfig) =>
    createInbound({
      config: inboundConfig,
      auth: inboundConfig.auth ? createAuthenticator(inboundConfig.auth.users) : undefined,
      log: log.child({ inbound: inboundConfig.name }),
      runtime: () => runtime,
      nextId,
    }),
  );

  return {
    get config() {
      return config;
    },
    get activeConnections() {
      return inbounds.reduce((sum, inbound) => sum + inbound.activeConnections, 0);
    },
    async start() {
      const bound = new Map<string, AddressInfo>();
      try {
        for (const inbound of inbounds) {
          bound.set(inbound.name, await inbound.listen());
        }
      } catch (err) {
        await Promise.all(inbounds.map((i) => i.close()));
        throw err;
      }
      for (const inboundConfig of config.inbounds) {
        const address = bound.get(inboundConfig.name);
        log.info(
          {
            inbound: inboundConfig.name,
            type: inboundConfig.type,
            listen: address && `${address.address}:${address.port}`,
          },
          'listening',
        );
        warnIfOpen(inboundConfig, log);
      }
      return bound;
    },
    reload(next) {
      const nextRuntime = buildRuntime(next);
      config = next;
      runtime = nextRuntime;
      log.info(
        { rules: next.rules.length, outbounds: next.outbounds.length },
        'configuration reloaded',
      );
    },
    async stop(graceMs = config.limits.shutdown_grace) {
      await Promise.all(inbounds.map((i) => i.close()));
      const deadline = Date.now() + graceMs;
      while (inbounds.some((i) => i.activeConnections > 0) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const shutdown = new ProxyError('SHUTDOWN', 'gateway shutting down');
      for (const inbound of inbounds) inbound.closeConnections(shutdown);
    },
  };
}

function warnIfOpen(inbound: InboundConfig, log: Logger): void {
  const host = inbound.listen.host;
  const loopback =
    (host.kind === 'ipv4' && host.ip.startsWith('127.')) ||
    (host.kind === 'ipv6' && host.ip === '::1') ||
    (host.kind === 'domain' && host.name === 'localhost');
  if (!loopback && !inbound.auth && !inbound.allow) {
    log.warn(
      { inbound: inbound.name, listen: formatTarget(inbound.listen) },
      'open proxy: this inbound listens beyond loopback with neither auth nor allow; anyone who can reach it can use it',
    );
  }
}
