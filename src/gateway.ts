import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createAuthenticator } from './auth.js';
import type { Config, InboundConfig } from './config/schema.js';
import { ProxyError } from './errors.js';
import { createInbound } from './inbound/index.js';
import type { Inbound } from './inbound/types.js';
import type { Logger } from './log.js';
import { closeOutbounds, createOutbounds } from './outbound/index.js';
import { createUdpOutbounds } from './outbound/udp-index.js';
import { createDestinationPolicy } from './policy.js';
import { createRouter } from './route/router.js';
import type { Runtime } from './session.js';
import { startAdmin, type Admin } from './admin.js';
import { createMetrics, type Metrics } from './metrics.js';
import { formatTarget, isLoopback } from './target.js';

export interface Gateway {
  /** Starts every inbound; resolves with the addresses actually bound (port 0 → a free port). */
  start(): Promise<ReadonlyMap<string, AddressInfo>>;
  /** New sessions use the new configuration; live ones keep theirs. Inbound listeners are kept. */
  reload(config: Config): void;
  /**
   * Reloads from the source given at creation (SIGHUP, POST /reload); throws, and keeps the
   * running configuration, when the new one is refused.
   */
  reloadFromSource(): void;
  /** The admin endpoint's address, once started (when `admin.listen` is set). */
  readonly adminAddress: AddressInfo | undefined;
  /** Stops accepting, waits up to `graceMs` for live sessions, then closes the rest. */
  stop(graceMs?: number): Promise<void>;
  readonly config: Config;
  /** Client connections open now, over every inbound. */
  readonly activeConnections: number;
}

/**
 * With `log`, fallback groups run their health checkers (timers): the gateway gives it; a bare
 * build (`junction check`) starts nothing. Such a runtime's outbounds are closed (closeOutbounds)
 * when it is replaced or the gateway stops.
 */
export function buildRuntime(
  config: Config,
  metrics: Metrics = createMetrics(),
  log?: Logger,
): Runtime {
  const policy = createDestinationPolicy(config.limits.deny_destinations);
  return {
    router: createRouter(config.rules),
    outbounds: createOutbounds(config.outbounds, policy, { log, metrics }),
    udpOutbounds: createUdpOutbounds(config.outbounds, policy),
    limits: config.limits,
    accessLog: config.log.access,
    metrics,
  };
}

export interface GatewayOptions {
  /** Where SIGHUP and POST /reload read the configuration from. */
  readonly source?: () => Config;
}

export function createGateway(initial: Config, log: Logger, options: GatewayOptions = {}): Gateway {
  let config = initial;
  const metrics = createMetrics();
  let runtime = buildRuntime(config, metrics, log);
  let admin: Admin | undefined;
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

  metrics.observeConnections(() => new Map(inbounds.map((i) => [i.name, i.activeConnections])));

  const reload = (next: Config): void => {
    const nextRuntime = buildRuntime(next, metrics, log);
    const previous = runtime;
    config = next;
    runtime = nextRuntime;
    // Live sessions keep their connected streams; only the old health checkers stop.
    closeOutbounds(previous.outbounds);
    log.info(
      { rules: next.rules.length, outbounds: next.outbounds.length },
      'configuration reloaded',
    );
  };

  const reloadFromSource = (): void => {
    try {
      if (!options.source)
        throw new Error('this gateway has no configuration source to reload from');
      reload(options.source());
      metrics.reloaded(true);
    } catch (err) {
      metrics.reloaded(false);
      const problems = err instanceof Error ? err.message : String(err);
      log.error({ problems }, 'reload refused: the running configuration stays');
      throw err;
    }
  };

  return {
    get config() {
      return config;
    },
    get adminAddress() {
      return admin?.address;
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
        if (config.admin) {
          admin = await startAdmin({
            listen: config.admin.listen,
            metrics,
            log: log.child({ admin: true }),
            reload: reloadFromSource,
            token: () => config.admin?.token,
          });
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
    reload,
    reloadFromSource,
    async stop(graceMs = config.limits.shutdown_grace) {
      closeOutbounds(runtime.outbounds);
      await Promise.all(inbounds.map((i) => i.close()));
      await admin?.close();
      admin = undefined;
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
  if (!isLoopback(inbound.listen.host) && !inbound.auth && !inbound.allow) {
    log.warn(
      { inbound: inbound.name, listen: formatTarget(inbound.listen) },
      'open proxy: this inbound listens beyond loopback with neither auth nor allow; anyone who can reach it can use it',
    );
  }
}
