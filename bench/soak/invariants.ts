import type { Origins } from './env.js';
import type { Junction } from './junction.js';
import type { LoadResult } from './load.js';
import { USER_INBOUND_WAYS } from './ways.js';

const SOCKS5_WITH_USER = USER_INBOUND_WAYS.find((w) => w.kind === 'socks5')?.name ?? '';

/** What must hold once the load is over, and the figures it is judged on. */

/** Descriptors junction may hold beyond its baseline once settled (an admin scrape in passing). */
export const FD_TOLERANCE = 4;
/** Junction's resident memory must stay below this, at its peak and after the soak. */
export const RSS_BOUND_MIB = 256;
/** How long the settling may take: past junction's origin pool idle time and idle_timeout. */
export const SETTLE_LIMIT_MS = 20_000;
/** With no live session, SIGTERM ends junction at once, not after shutdown_grace. */
export const EXIT_LIMIT_MS = 1_000;
/** Warnings junction may log during a soak: about reloads only. */
const EXPECTED_WARNING = /reload/i;

export interface Settled {
  readonly ms: number;
  readonly live: number;
  readonly originOpen: number;
  readonly fds: number;
}

/** Polls until junction holds no connection and no more descriptors than at the start. */
export async function settle(junction: Junction, origins: Origins, fdBaseline: number) {
  const started = performance.now();
  for (;;) {
    const fds = junction.fds();
    const live = await junction.liveConnections();
    const originOpen = origins.open();
    const ms = performance.now() - started;
    const quiet = live === 0 && originOpen === 0 && fds <= fdBaseline + FD_TOLERANCE;
    if (quiet || ms > SETTLE_LIMIT_MS) return { ms, live, originOpen, fds } satisfies Settled;
    await new Promise((resolve) => setTimeout(resolve, 200)); // polling a settling count
  }
}

export interface Observed {
  readonly load: LoadResult;
  readonly settled: Settled;
  readonly fdBaseline: number;
  /** The most descriptors junction held at any one sample during the load. */
  readonly fdPeak: number;
  readonly rssBaselineMiB: number;
  readonly rssAfterMiB: number;
  readonly rssPeakMiB: number;
  readonly healthy: boolean;
  readonly reloadsSent: number;
  readonly exit: { code: number | null; signal: string | null; ms: number };
  /** CPU seconds during the load: junction's, and the soak's own (clients and origins). */
  readonly cpu: { junction: number; soak: number };
}

export function violations(junction: Junction, observed: Observed): string[] {
  const { load, settled, exit } = observed;
  const found: string[] = [];
  const log = junction.log;

  for (const [name, tally] of load.tallies) {
    if (tally.failures > 0) found.push(`${name}: ${tally.failures} of ${tally.runs} runs failed`);
  }
  found.push(...accessLineDifferences(load.expectedLines, log.access));

  if (settled.live !== 0)
    found.push(`${settled.live} client connections still live after settling`);
  if (settled.originOpen !== 0) {
    found.push(`${settled.originOpen} origin connections still open after settling`);
  }
  if (settled.fds > observed.fdBaseline + FD_TOLERANCE) {
    found.push(
      `junction holds ${settled.fds} fds, baseline ${observed.fdBaseline} (+${FD_TOLERANCE})`,
    );
  }
  if (observed.rssPeakMiB > RSS_BOUND_MIB) {
    found.push(
      `junction RSS peaked at ${observed.rssPeakMiB.toFixed(0)} MiB (bound ${RSS_BOUND_MIB})`,
    );
  }
  if (observed.rssAfterMiB > RSS_BOUND_MIB) {
    found.push(
      `junction RSS ${observed.rssAfterMiB.toFixed(0)} MiB after the soak (bound ${RSS_BOUND_MIB})`,
    );
  }

  for (const level of ['error', 'fatal']) {
    const count = log.levels.get(level) ?? 0;
    if (count > 0) found.push(`${count} ${level} lines in junction's log`);
  }
  for (const [message, count] of log.messages) {
    if (message.startsWith('warn: ') && !EXPECTED_WARNING.test(message)) {
      found.push(`${count} unexpected warnings: "${message}"`);
    }
  }
  if (log.notJson > 0) found.push(`${log.notJson} lines of junction's stdout were not JSON`);
  if (junction.stderr() !== '')
    found.push(`junction wrote on stderr: ${summariseStderr(junction.stderr())}`);

  // Only clients that fail a handshake (too slow, or refused before any request) may leave a
  // line about their connection; a probe may not.
  const handshakeFailures =
    (load.tallies.get('drip')?.runs ?? 0) +
    (load.tallies.get('auth-refused')?.ways.get(SOCKS5_WITH_USER) ?? 0);
  const connectionLines = [...log.connectionLines.values()].reduce((a, b) => a + b, 0);
  if (connectionLines > handshakeFailures) {
    const messages = [...log.connectionLines].map(([m, n]) => `"${m}" ×${n}`).join(', ');
    found.push(
      `${connectionLines} lines about a client connection (${messages}) for ` +
        `${handshakeFailures} failed handshakes: probes (or healthy sessions) are logging`,
    );
  }

  const reloads = log.messages.get('info: configuration reloaded') ?? 0;
  if (reloads !== observed.reloadsSent) {
    found.push(`${observed.reloadsSent} reloads sent, ${reloads} logged as done`);
  }
  if (!observed.healthy) found.push('junction was not healthy (/healthz) after the soak');
  if (exit.code !== 0)
    found.push(`junction exited with ${String(exit.code ?? exit.signal)} on SIGTERM`);
  if (exit.ms > EXIT_LIMIT_MS) {
    found.push(
      `junction took ${Math.round(exit.ms)} ms to exit with no live session (limit ${EXIT_LIMIT_MS})`,
    );
  }
  return found;
}

/** Every session is logged once, with the result its scenario must end in. */
function accessLineDifferences(
  expected: ReadonlyMap<string, number>,
  actual: ReadonlyMap<string, number>,
): string[] {
  const keys = [...new Set([...expected.keys(), ...actual.keys()])].sort();
  const differences: string[] = [];
  for (const key of keys) {
    const want = expected.get(key) ?? 0;
    const got = actual.get(key) ?? 0;
    if (want !== got) differences.push(`access lines ${key}: ${got}, expected ${want}`);
  }
  return differences;
}

/**
 * Node's warnings (junction runs with --trace-warnings), each with the first frame in junction's
 * own code, counted: "MaxListenersExceededWarning: ... at connect (dist/session.js:60:20)" ×12.
 */
function summariseStderr(text: string): string {
  const counts = new Map<string, number>();
  const bump = (key: string): void => {
    counts.set(key, (counts.get(key) ?? 0) + 1);
  };
  let warning: string | undefined;
  for (const line of text.split('\n')) {
    const message = /^\(node:\d+\) (.*)$/.exec(line)?.[1];
    const frame = /^\s+at (.*)file:\/\/\S*\/dist\/(.*)$/.exec(line);
    if (message !== undefined) {
      if (warning !== undefined) bump(warning);
      warning = message.replace(/ Use emitter\.setMaxListeners\(\).*$/, '');
    } else if (frame && warning !== undefined) {
      bump(`${warning} at ${frame[1] ?? ''}dist/${frame[2] ?? ''}`);
      warning = undefined;
    } else if (warning === undefined && !/^\s+at |^\(Use `node/.test(line) && line.trim() !== '') {
      bump(line.trim());
    }
  }
  if (warning !== undefined) bump(warning);
  return [...counts].map(([what, n]) => `"${what}" ×${n}`).join('; ');
}
