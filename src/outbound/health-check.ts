import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseHostPort, type Target } from '../target.js';
import type { FallbackOutbound } from './fallback.js';
import { HttpConnection } from './http-connection.js';
import { createOriginLink } from './http-link.js';
import type { ClientPresence } from './plain-request.js';
import type { Outbound } from './types.js';

export interface CheckConfig {
  /** http:// or https:// URL: dialled through the member, one GET, any HTTP status line is up. */
  readonly url?: string | undefined;
  /** host:port: dialled through the member; a connection is up. */
  readonly tcp?: string | undefined;
  readonly interval: number;
  readonly timeout: number;
}

export interface HealthChecker {
  /** Probes every member now (the timer does this every `interval`). */
  runOnce(): Promise<void>;
  close(): void;
}

/**
 * Probes every member of a group every `interval`, each within `timeout`: a member that passes
 * is marked up, one that fails is marked down. The timer is unref'd (it never keeps the process
 * alive) and a round never overlaps the previous one. A check with neither `url` nor `tcp` does
 * nothing (the group then relies on sessions and its passive retry).
 */
export function startHealthChecker(
  group: FallbackOutbound,
  check: CheckConfig,
  log: Logger,
): HealthChecker {
  const probeTarget = check.url ?? check.tcp;
  let closed = false;
  let running: Promise<void> | undefined;
  const runOnce = async (): Promise<void> => {
    if (probeTarget === undefined) return;
    await Promise.all(
      group.members.map(async ({ outbound }) => {
        try {
          await probe(outbound, check, log);
          if (!closed) group.markUp(outbound.name, log);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          if (!closed) group.markDown(outbound.name, `health check failed: ${reason}`, log);
        }
      }),
    );
  };
  const timer = setInterval(() => {
    if (running) return;
    running = runOnce().finally(() => {
      running = undefined;
    });
  }, check.interval);
  timer.unref();
  return {
    runOnce,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}

/** Resolves when `outbound` passes the check; rejects with the reason otherwise. */
export async function probe(outbound: Outbound, check: CheckConfig, log: Logger): Promise<void> {
  const signal = AbortSignal.timeout(check.timeout);
  const deadline = Date.now() + check.timeout;
  if (check.url !== undefined) {
    const url = new URL(check.url);
    const https = url.protocol === 'https:';
    const target = targetOf(`${url.hostname}:${url.port || (https ? '443' : '80')}`);
    const { stream } = await outbound.dial(target, { signal, log, deadline });
    try {
      const wire = https
        ? await startTls(stream, url.hostname.replace(/^\[|\]$/g, ''), signal)
        : stream;
      await httpAnswer(wire, target, url, signal, check.timeout);
    } finally {
      stream.destroy();
    }
    return;
  }
  if (check.tcp !== undefined) {
    const { stream } = await outbound.dial(targetOf(check.tcp), { signal, log, deadline });
    stream.destroy();
  }
}

export function targetOf(text: string): Target {
  const parsed = parseHostPort(text);
  if (!parsed) throw new ProxyError('BAD_REQUEST', `bad check target "${text}"`);
  return parsed;
}

function startTls(stream: Duplex, servername: string, signal: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ socket: stream, servername });
    const onAbort = (): void => {
      socket.destroy();
      reject(new Error('TLS handshake timed out'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      resolve(socket);
    });
    socket.once('error', (err: Error) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    });
  });
}

/** One GET on `stream`, sent as every plain request is (http-link.ts): any status is up. */
async function httpAnswer(
  stream: Duplex,
  target: Target,
  url: URL,
  signal: AbortSignal,
  idleMs: number,
): Promise<void> {
  const link = createOriginLink(new HttpConnection(stream), {
    reused: false,
    keep: undefined,
    redial: undefined,
  });
  const prober = presenceUntil(signal);
  const answer = await link
    .send(
      {
        method: 'GET',
        target,
        authority: url.host,
        path: `${url.pathname}${url.search}`,
        headers: ['Host', url.host, 'User-Agent', 'junction-health-check', 'Connection', 'close'],
        body: undefined,
        onContinue: undefined,
        client: prober,
        idleMs,
      },
      { retriable: false, answerer: undefined, authorization: undefined, count: 1 },
    )
    .catch((err: unknown) => {
      throw signal.aborted ? new Error('no HTTP answer in time') : err;
    });
  if (typeof answer === 'string') throw new Error('no HTTP answer');
  answer.release(false);
}

/** The prober, as the client of its request: gone when `signal` aborts (the check's timeout). */
function presenceUntil(signal: AbortSignal): ClientPresence {
  const presence: { gone: ProxyError | undefined; onGone: ClientPresence['onGone'] } = {
    gone: undefined,
    onGone: undefined,
  };
  const onAbort = (): void => {
    presence.gone = new ProxyError('CONNECT_TIMEOUT', 'no HTTP answer in time');
    presence.onGone?.(presence.gone);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return presence;
}
