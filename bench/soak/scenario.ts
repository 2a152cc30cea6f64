import { createHash } from 'node:crypto';
import { rawConnect, type RawClient } from '../../test/helpers/net.js';
import { LIMITS, type InboundName } from './junction.js';
import type { Rng } from './random.js';
import type { Tracker } from './tracker.js';
import {
  credentialsFor,
  openTunnel,
  type CredentialChoice,
  type Opened,
  type Way,
} from './ways.js';

/** Any single step (a reply, a response, a transfer) that takes longer than this has hung. */
export const STEP_MS = 10_000;
/**
 * After one side of a session leaves (a reset, a client gone before its answer), the other side
 * must be closed within this: "at once", with room for a loaded machine, and well before
 * idle_timeout would close it anyway.
 */
export const CLOSE_BOUND_MS = LIMITS.idleMs / 2;

/** What every scenario can reach: junction's inbounds, the origins, the failing targets. */
export interface Env {
  readonly proxy: Readonly<Record<InboundName, number>>;
  readonly tracker: Tracker;
  /**
   * The port of scenario `name`'s own origin: raw TCP for tunnels, node:http for forwarded
   * requests. Access lines are told apart by it.
   */
  originPort(name: string, kind: 'tcp' | 'http'): number;
  /** A loopback port nothing listens on. */
  readonly refusedPort: number;
  /** A name the resolver refuses at once, without asking the network. */
  readonly unresolvableHost: string;
}

/** One run of a scenario: one client connection into junction, the way `way` says. */
export interface Run {
  readonly env: Env;
  readonly way: Way;
  readonly rng: Rng;
  /** Unique to this run; the origins see it in the command or path. */
  readonly token: string;
  /** This run's origin port (see Env.originPort). */
  readonly originPort: number;
  /**
   * Declares an access line junction must write for this run ("ok" or a failure code), for a
   * session to this run's origin unless `label` names another target.
   */
  expectLine(result: string, label?: string): void;
  /** A raw connection to the way's inbound, destroyed when the run ends. */
  connect(): Promise<RawClient>;
  /**
   * Asks for a tunnel to host:port (default: this run's origin), with the way's credentials
   * ('right'), wrong ones, or none.
   */
  tunnel(target?: { host: string; port: number }, credentials?: CredentialChoice): Promise<Opened>;
  /** Follows this run's token at the origins (for the tracker's waits). */
  watch(): void;
}

export interface Scenario {
  readonly name: string;
  /** Its share of the mix, relative to the others. */
  readonly weight: number;
  /** The ways in it runs over, picked at random for each run. */
  readonly ways: readonly Way[];
  /** Resolves when every expectation held; rejects with what did not. */
  run(run: Run): Promise<void>;
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export function check(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new Error(reason);
}

/** Compares received bytes with the expected ones; the reason says how they differ. */
export function checkBytes(got: Buffer, want: Buffer, what: string): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: got ${got.length} bytes, expected ${want.length}`);
  }
  check(sha256(got) === sha256(want), `${what}: checksum differs (${got.length} bytes)`);
}

export const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

export interface RunState {
  readonly run: Run;
  readonly expected: string[];
  /** Destroys what the run left open and stops following its token. */
  dispose(): void;
}

export function accessKey(way: Way, label: string, result: string): string {
  return `${way.inbound}/${way.protocol}/${label}/${result}`;
}

export function createRun(
  env: Env,
  scenario: Scenario,
  way: Way,
  rng: Rng,
  token: string,
): RunState {
  const clients: RawClient[] = [];
  const expected: string[] = [];
  let watched = false;
  const proxyPort = env.proxy[way.inbound];
  const originPort = env.originPort(scenario.name, way.kind === 'forward' ? 'http' : 'tcp');
  const run: Run = {
    env,
    way,
    rng,
    token,
    originPort,
    expectLine(result, label = scenario.name) {
      expected.push(accessKey(way, label, result));
    },
    async connect() {
      const client = await rawConnect(proxyPort);
      clients.push(client);
      return client;
    },
    tunnel(target = { host: way.originHost, port: originPort }, credentials = 'right') {
      return openTunnel(
        way,
        proxyPort,
        target.host,
        target.port,
        credentialsFor(way, credentials),
        STEP_MS,
        (client) => clients.push(client),
      );
    },
    watch() {
      env.tracker.watch(token);
      watched = true;
    },
  };
  return {
    run,
    expected,
    dispose() {
      for (const client of clients) client.socket.destroy();
      if (watched) env.tracker.forget(token);
    },
  };
}
