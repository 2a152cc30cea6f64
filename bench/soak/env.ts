import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { startHttpOrigin, type HttpOrigin } from './origin-http.js';
import { startTcpOrigin, type TcpOrigin } from './origin-tcp.js';
import type { Scenario } from './scenario.js';
import { createTracker, type Tracker } from './tracker.js';

/**
 * A name the resolver refuses by itself: a label longer than RFC 1035's 63 octets cannot be
 * put in a query, so glibc answers ENOTFOUND without asking the network. (A plain
 * `nothing.invalid` goes to the configured nameserver, and some of those queries take seconds
 * when many are in flight.)
 */
export const UNRESOLVABLE_HOST = `${'x'.repeat(64)}.invalid`;

export interface Origins {
  readonly tracker: Tracker;
  readonly refusedPort: number;
  originPort(name: string, kind: 'tcp' | 'http'): number;
  /** What an access line's target was: a scenario's origin, "refused" or "unresolvable". */
  label(target: string): string;
  /** Origin connections open now. */
  open(): number;
  close(): Promise<void>;
}

/** Starts a raw TCP and a node:http origin for every scenario, and finds a refusing port. */
export async function startOrigins(scenarios: readonly Scenario[]): Promise<Origins> {
  await checkUnresolvableFailsFast();
  const tracker = createTracker();
  const tcp = new Map<string, TcpOrigin>();
  const http = new Map<string, HttpOrigin>();
  const byPort = new Map<number, string>();
  for (const { name } of scenarios) {
    const t = await startTcpOrigin(tracker);
    const h = await startHttpOrigin(tracker);
    tcp.set(name, t);
    http.set(name, h);
    byPort.set(t.port, name).set(h.port, name);
  }
  const refusedPort = await findRefusingPort();
  const all = [...tcp.values(), ...http.values()];
  return {
    tracker,
    refusedPort,
    originPort(name, kind) {
      const origin = kind === 'tcp' ? tcp.get(name) : http.get(name);
      if (!origin) throw new Error(`no origin for scenario ${name}`);
      return origin.port;
    },
    label(target) {
      const colon = target.lastIndexOf(':');
      const host = target.slice(0, colon);
      const port = Number(target.slice(colon + 1));
      if (host === UNRESOLVABLE_HOST) return 'unresolvable';
      if (port === refusedPort) return 'refused';
      return byPort.get(port) ?? `other ${target}`;
    },
    open: () => all.reduce((sum, origin) => sum + origin.open, 0),
    close: async () => {
      await Promise.all(all.map((origin) => origin.close()));
    },
  };
}

async function checkUnresolvableFailsFast(): Promise<void> {
  const started = performance.now();
  const outcome = await lookup(UNRESOLVABLE_HOST, { all: true }).then(
    () => 'resolved',
    (err: unknown) => (err as NodeJS.ErrnoException).code ?? 'failed',
  );
  const ms = performance.now() - started;
  if (outcome !== 'ENOTFOUND' || ms > 500) {
    throw new Error(
      `${UNRESOLVABLE_HOST} must fail with ENOTFOUND at once here, got ${outcome} in ${Math.round(ms)} ms`,
    );
  }
}

/**
 * A loopback port below the ephemeral range (which listen(0) draws from, in this and any other
 * process) that refuses connections now.
 */
async function findRefusingPort(): Promise<number> {
  for (let port = 20_000 + Math.floor(Math.random() * 5_000); port < 32_000; port += 97) {
    const refusedNow = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refusedNow) return port;
  }
  throw new Error('no refusing loopback port found');
}
