/**
 * RFC 1928 §7: "A UDP association terminates when the TCP connection that the UDP ASSOCIATE
 * request arrived on terminates." It also ends after udp_idle_timeout without a datagram either
 * way, or when an outbound fails it; whichever comes first ends it, once.
 */
import type { Socket } from 'node:net';
import { errorCode, ProxyError, toProxyError } from '../../errors.js';
import type { Traffic } from './traffic.js';

export interface Lifetime {
  /** Ends the association now; later calls, and later events, do nothing. */
  end(error: ProxyError | undefined): void;
}

/**
 * Watches the control connection (which carries nothing more after the reply) and the idle
 * time; calls `onEnd` once, with the reason (undefined for a clean close by the client).
 */
export function watchLifetime(
  control: Socket,
  idleMs: number,
  traffic: Pick<Traffic, 'lastActivity'>,
  onEnd: (error: ProxyError | undefined) => void,
): Lifetime {
  let ended = false;
  let idleTimer: NodeJS.Timeout | undefined;
  let controlError: ProxyError | undefined;

  const end = (error: ProxyError | undefined): void => {
    if (ended) return;
    ended = true;
    clearTimeout(idleTimer);
    onEnd(error);
  };

  control.on('data', () => undefined);
  control.on('error', (err) => {
    const reason = `control connection: ${errorCode(err) ?? err.message}`;
    controlError ??= toProxyError(err, new ProxyError('CLIENT_CLOSED', reason));
  });
  control.once('end', () => {
    end(undefined);
  });
  control.once('close', () => {
    end(controlError);
  });
  control.resume();

  // One timer re-armed when it fires, not on every datagram.
  const checkIdle = (): void => {
    const idle = performance.now() - traffic.lastActivity;
    if (idle >= idleMs) end(new ProxyError('IDLE_TIMEOUT', `no datagrams for ${idleMs}ms`));
    else idleTimer = setTimeout(checkIdle, idleMs - idle);
  };
  if (idleMs > 0) idleTimer = setTimeout(checkIdle, idleMs);

  // Closed while the relay was being bound: the events above have already fired.
  if (control.destroyed || control.readableEnded) end(controlError);
  return { end };
}
