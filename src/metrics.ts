import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The few series an operator alerts on; the only importer of prom-client. */
export interface Metrics {
  readonly registry: Registry;
  /** One finished session: counted once, with its bytes and how long its connect took. */
  sessionEnded(ended: SessionMetrics): void;
  /** A connection closed before its protocol began (max_connections, a refused PROXY header). */
  connectionRefused(inbound: string, reason: 'max_connections' | 'proxy_protocol'): void;
  reloaded(ok: boolean): void;
  /** Reads live values (open connections per inbound) at scrape time. */
  observeConnections(read: () => ReadonlyMap<string, number>): void;
  /** A fallback group's member marked up (1) or down (0): `junction_outbound_up`. */
  memberState(group: string, member: string, up: boolean): void;
}

export interface SessionMetrics {
  readonly inbound: string;
  readonly outbound: string | undefined;
  readonly result: string;
  readonly up: number;
  readonly down: number;
  /** Seconds from the start of routing to a connected stream; undefined if it never connected. */
  readonly connectSeconds: number | undefined;
}

/** One label set's sessions and bytes not yet handed to prom-client. */
interface Tally {
  sessions: number;
  up: number;
  down: number;
  readonly sessionsChild: Counter.Internal;
  readonly upChild: Counter.Internal;
  readonly downChild: Counter.Internal;
  readonly connectChild: Histogram.Internal<'outbound'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  // A prom-client update hashes its labels on every call, and a busy gateway ends thousands of
  // sessions a second: each label set's counts are added up here in plain numbers and handed to
  // prom-client when the registry is read (the counters' collect). Connect times go straight to
  // the histogram's child, which has buckets to fill.
  const tallies = new Map<string, Tally>();
  const flushTallies = (): void => {
    for (const tally of tallies.values()) {
      if (tally.sessions > 0) tally.sessionsChild.inc(tally.sessions);
      if (tally.up > 0) tally.upChild.inc(tally.up);
      if (tally.down > 0) tally.downChild.inc(tally.down);
      tally.sessions = 0;
      tally.up = 0;
      tally.down = 0;
    }
  };
  collectDefaultMetrics({ register: registry, prefix: 'junction_' });
  const sessions = new Counter({
    name: 'junction_sessions_total',
    help: 'Finished sessions by inbound, outbound and result (ok or the failure code).',
    labelNames: ['inbound', 'outbound', 'result'] as const,
    registers: [registry],
    collect: () => flushTallies(),
  });
  const bytes = new Counter({
    name: 'junction_bytes_total',
    help: 'Bytes relayed, by direction (up: client to target) and outbound.',
    labelNames: ['direction', 'inbound', 'outbound'] as const,
    registers: [registry],
    collect: () => flushTallies(),
  });
  const connectSeconds = new Histogram({
    name: 'junction_connect_seconds',
    help: 'Time to route and connect a session, by outbound.',
    labelNames: ['outbound'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'junction_connections_refused_total',
    help: 'Connections closed at accept time, by inbound and reason.',
    labelNames: ['inbound', 'reason'] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'junction_config_reloads_total',
    help: 'Configuration reloads by result (ok, refused).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const memberUp = new Gauge({
    name: 'junction_outbound_up',
    help: 'Fallback group members: 1 while marked up, 0 while marked down, by group and member.',
    labelNames: ['outbound', 'member'] as const,
    registers: [registry],
  });
  let readConnections: () => ReadonlyMap<string, number> = () => new Map();
  new Gauge({
    name: 'junction_connections_active',
    help: 'Client connections open now, by inbound.',
    labelNames: ['inbound'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [inbound, count] of readConnections()) this.set({ inbound }, count);
    },
  });

  const tallyFor = (inbound: string, outbound: string, result: string): Tally => {
    const key = `${inbound}\u0000${outbound}\u0000${result}`;
    let found = tallies.get(key);
    if (!found) {
      found = {
        sessions: 0,
        up: 0,
        down: 0,
        sessionsChild: sessions.labels(inbound, outbound, result),
        upChild: bytes.labels('up', inbound, outbound),
        downChild: bytes.labels('down', inbound, outbound),
        connectChild: connectSeconds.labels(outbound),
      };
      tallies.set(key, found);
    }
    return found;
  };
  return {
    registry,
    sessionEnded(ended) {
      const tally = tallyFor(ended.inbound, ended.outbound ?? 'none', ended.result);
      tally.sessions++;
      tally.up += ended.up;
      tally.down += ended.down;
      if (ended.connectSeconds !== undefined) tally.connectChild.observe(ended.connectSeconds);
    },
    connectionRefused(inbound, reason) {
      refused.inc({ inbound, reason });
    },
    reloaded(ok) {
      reloads.inc({ result: ok ? 'ok' : 'refused' });
    },
    observeConnections(read) {
      readConnections = read;
    },
    memberState(group, member, up) {
      memberUp.set({ outbound: group, member }, up ? 1 : 0);
    },
  };
}
