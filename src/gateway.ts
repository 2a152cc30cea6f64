import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Config, InboundConfig } from './config/schema.js';
import { errorCode, ProxyError, toProxyError } from './errors.js';
import { createInboundAccess } from './inbound/access.js';
import { createInbound, type ReloadableInbound } from './inbound/index.js';
import { planInboundReload } from './inbound/reload.js';
import type { Logger } from './log.js';
import { closeOutbounds, createOutbounds } from './outbound/index.js';
import {
  createKerberosSupport,
  prepareKerberos,
  type KerberosSupport,
} from './outbound/proxy-auth/kerberos.js';
import { createDestinationPolicy } from './policy.js';
import { createRouter } from './route/router.js';
import {
  createSessionRegistry,
  type LiveSession,
  type Runtime,
  type SessionRecord,
  type SessionRegistry,
} from './session.js';
import { startAdmin, type Admin } from './admin.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createSelfEndpoints, type SelfEndpoints } from './self-endpoints.js';
import { pacForInbound } from './pac.js';
import { ratePlan } from './session-limits.js';
import { formatTarget, hostToString, isLoopback } from './target.js';

export interface Gateway {
  /** Starts every inbound; resolves with the addresses actually bound (port 0 → a free port). */
  start(): Promise<ReadonlyMap<string, AddressInfo>>;
  /**
   * New sessions use the new configuration (rules, outbounds, limits, and each inbound's users,
   * `allow` and UDP settings); live ones keep theirs. Listeners are kept: what a reload cannot
   * change (an inbound added, removed, retyped or moved, the admin address) is a warning.
   */
  reload(config: Config): void;
  /**
   * Reloads from the source given at creation (SIGHUP, POST /reload); rejects, and keeps the
   * running configuration, when the new one is refused. Reloads run one at a time, in order.
   */
  reloadFromSource(): Promise<void>;
  /** The admin endpoint's address, once started (when `admin.listen` is set). */
  readonly adminAddress: AddressInfo | undefined;
  /**
   * Stops accepting and closes every connection without a session at once (handshakes, probes,
   * idle kept-alive HTTP connections), waits up to `graceMs` for live sessions, then closes the
   * rest. Never rejects: a step that fails is logged and the next one runs.
   */
  stop(graceMs?: number): Promise<void>;
  readonly config: Config;
  /** Calls `observer` with the access-log fields of every session that ends from now on. */
  observeSessions(observer: ((record: SessionRecord) => void) | undefined): void;
  /** This process's counters (a cluster's primary aggregates the workers'). */
  readonly metrics: Metrics;
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
  self?: SelfEndpoints,
  sessions: SessionRegistry = createSessionRegistry(),
  kerberos?: KerberosSupport,
): Runtime {
  const policy = createDestinationPolicy(config.limits.deny_destinations, self);
  return {
    router: createRouter(config.rules),
    outbounds: createOutbounds(config.outbounds, policy, { log, metrics, kerberos }),
    limits: config.limits,
    rates: ratePlan(config),
    rules: config.rules,
    accessLog: config.log.access,
    metrics,
    sessions,
  };
}

export interface GatewayOptions {
  /**
   * Where SIGHUP and POST /reload read the configuration from. Sessions are served while a
   * source that returns a promise works; they see the new configuration once it is complete.
   */
  readonly source?: () => Config | Promise<Config>;
  /**
   * False in a worker process: the primary serves the admin endpoint for every worker. The
   * admin address is still one of junction's own, never a destination.
   */
  readonly admin?: boolean;
}

export function createGateway(initial: Config, log: Logger, options: GatewayOptions = {}): Gateway {
  let config = initial;
  const metrics = createMetrics();
  // Filled once the listeners are bound; every generation's outbounds refuse to dial them.
  const self = createSelfEndpoints();
  // Sessions are listed by the admin endpoint only: without one, none is tracked.
  const sessions = createSessionRegistry(config.admin !== undefined && options.admin !== false);
  // Negotiate's binding, loaded at start when an outbound may use it.
  const kerberos = createKerberosSupport();
  let runtime = buildRuntime(config, metrics, log, self, sessions, kerberos);
  let admin: Admin | undefined;
  const idPrefix = randomBytes(3).toString('hex');
  let sequence = 0;
  const nextId = (): string => `${idPrefix}-${(++sequence).toString(36)}`;

  const inbounds: ReloadableInbound[] = config.inbounds.map((inboundConfig) =>
    createInbound(createInboundAccess(inboundConfig), {
      log: log.child({ inbound: inboundConfig.name }),
      runtime: () => runtime,
      nextId,
    }),
  );

  metrics.observeConnections(() => new Map(inbounds.map((i) => [i.name, i.activeConnections])));

  const reload = (next: Config): void => {
    // Everything is built before anything is swapped: a throw refuses the whole reload.
    const plan = planInboundReload(initial.inbounds, next.inbounds);
    const nextRuntime = buildRuntime(next, metrics, log, self, sessions, kerberos);
    const previous = runtime;
    config = next;
    runtime = nextRuntime;
    // The buckets are shared by name across generations: live sessions follow the new rates.
    sessions.limiter.retune(nextRuntime.rates);
    for (const inbound of inbounds) {
      const access = plan.access.get(inbound.name);
      if (!access) continue;
      inbound.reconfigure(access);
      warnIfOpen(access.config, log);
    }
    // Live sessions keep their connected streams; only the old health checkers stop.
    closeOutbounds(previous.outbounds);
    for (const { inbound, message, detail } of plan.warnings)
      log.warn({ inbound, ...detail }, message);
    const adminAt = (c: Config): string => (c.admin ? formatTarget(c.admin.listen) : 'none');
    if (adminAt(next) !== adminAt(initial)) {
      log.warn(
        { admin: adminAt(initial), configured: adminAt(next) },
        'a reload cannot move the admin endpoint: it stays where it is until a restart',
      );
    }
    log.info(
      { rules: next.rules.length, outbounds: next.outbounds.length },
      'configuration reloaded',
    );
  };

  /** Each inbound's bound address, once started. */
  const bound = new Map<string, AddressInfo>();
  let stopping = false;
  const reloadOnce = async (): Promise<void> => {
    try {
      if (!options.source)
        throw new Error('this gateway has no configuration source to reload from');
      const next = await options.source();
      // A stop that began meanwhile has closed what the new runtime would replace.
      if (stopping) return;
      await prepareKerberos(kerberos, next.outbounds, log);
      reload(next);
      metrics.reloaded(true);
    } catch (err) {
      metrics.reloaded(false);
      const problems = err instanceof Error ? err.message : String(err);
      log.error({ problems }, 'reload refused: the running configuration stays');
      throw err;
    }
  };
  // One at a time, so the configuration last read is the one that stays.
  let reloading: Promise<unknown> = Promise.resolve();
  const reloadFromSource = (): Promise<void> => {
    const done = reloading.then(reloadOnce, reloadOnce);
    reloading = done.catch(() => undefined);
    return done;
  };

  return {
    get config() {
      return config;
    },
    get adminAddress() {
      return admin?.address;
    },
    metrics,
    observeSessions(observer) {
      sessions.observer = observer;
    },
    get activeConnections() {
      return inbounds.reduce((sum, inbound) => sum + inbound.activeConnections, 0);
    },
    async start() {
      bound.clear();
      await prepareKerberos(kerberos, config.outbounds, log);
      try {
        for (const inbound of inbounds) {
          bound.set(inbound.name, await inbound.listen());
        }
        if (config.admin && options.admin !== false) {
          admin = await startAdmin({
            listen: config.admin.listen,
            metrics,
            log: log.child({ admin: true }),
            reload: reloadFromSource,
            token: () => config.admin?.token,
            sessions: {
              list: () => [...(sessions.live?.values() ?? [])].map(describeSession),
              close: (id) => {
                const session = sessions.live?.get(id);
                session?.close(new ProxyError('CLOSED_BY_ADMIN', 'closed by the admin endpoint'));
                return session !== undefined;
              },
            },
            pac: (name, host) =>
              pacForInbound({ inbounds: config.inbounds, rules: runtime.rules }, name, host, (n) =>
                bound.get(n),
              ),
          });
        }
      } catch (err) {
        await Promise.all(inbounds.map((i) => i.close()));
        throw err;
      }
      // A worker's admin endpoint is the primary's, at the configured address.
      const adminAt: AddressInfo | undefined =
        admin?.address ??
        (config.admin && {
          address: hostToString(config.admin.listen.host),
          port: config.admin.listen.port,
          family: config.admin.listen.host.kind === 'ipv6' ? 'IPv6' : 'IPv4',
        });
      self.set([...bound.values(), ...(adminAt ? [adminAt] : [])]);
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
      stopping = true;
      // Each step runs whatever the one before did: a failure is logged, never thrown.
      const step = (what: string, run: () => unknown): Promise<void> => settle(log, what, run);
      await step('closing the outbounds', () => {
        closeOutbounds(runtime.outbounds);
      });
      // Stops accepting, and closes connections without a session (handshakes, idle keep-alive).
      for (const inbound of inbounds)
        await step(`closing inbound ${inbound.name}`, () => inbound.close());
      await step('closing the admin endpoint', async () => {
        await admin?.close();
        admin = undefined;
      });
      await withinGrace(Promise.all(inbounds.map((i) => i.drained())), graceMs);
      const shutdown = new ProxyError('SHUTDOWN', 'gateway shutting down');
      for (const inbound of inbounds) {
        await step(`closing the connections of inbound ${inbound.name}`, () => {
          inbound.closeConnections(shutdown);
        });
      }
    },
  };
}

/** A session as GET /sessions lists it. */
function describeSession(session: LiveSession): Record<string, unknown> {
  const { info } = session;
  const { up, down } = session.bytes();
  return {
    id: info.id,
    inbound: info.inbound,
    protocol: info.protocol,
    client: `${info.source.ip}:${info.source.port}`,
    user: info.user,
    target: formatTarget(info.target),
    outbound: session.outbound,
    up,
    down,
    age_ms: Date.now() - session.started,
  };
}

/** Runs one step of a stop; a failure is logged with what it was, and stop goes on. */
async function settle(log: Logger, what: string, run: () => unknown): Promise<void> {
  try {
    await run();
  } catch (err) {
    const reason = errorCode(err) ?? (err instanceof Error ? err.message : 'failed');
    const failure = toProxyError(err, new ProxyError('INTERNAL', reason));
    log.error({ code: failure.code, reason: failure.message }, `stop: ${what} failed`);
  }
}

/** Resolves when `done` does or after `ms`, whichever is first, and leaves no timer behind. */
async function withinGrace(done: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([done, grace]);
  clearTimeout(timer);
}

function warnIfOpen(inbound: InboundConfig, log: Logger): void {
  if (!isLoopback(inbound.listen.host) && !inbound.auth && !inbound.allow) {
    log.warn(
      { inbound: inbound.name, listen: formatTarget(inbound.listen) },
      'open proxy: this inbound listens beyond loopback with neither auth nor allow; anyone who can reach it can use it',
    );
  }
}
