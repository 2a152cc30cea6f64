// RFC 9110 §7.6.3 (Via) and §7.3: a request that already passed through this listener has come
// back in a loop (through other proxies, or another junction whose upstream is us). Forwarding
// it again would open one more connection per turn until file descriptors run out.
import type { IncomingMessage } from 'node:http';
import { ProxyError } from '../errors.js';
import type { Session } from '../session.js';
import { viaValues, type Via } from '../via.js';

/**
 * Refuses a request whose Via list names this listener: answered (403, as Squid does), logged,
 * and nothing dialled. Gives undefined when the request did not loop.
 */
export function refuseLoop(
  session: Session,
  req: IncomingMessage,
  ours: Via,
  refuse: (error: ProxyError) => void,
): Promise<void> | undefined {
  const via = viaValues(req.rawHeaders);
  if (!ours.cameThroughUs(via)) return undefined;
  const error = new ProxyError(
    'FORWARDING_LOOP',
    `forwarding loop: the request already came through this proxy (Via ${ours.pseudonym})`,
  );
  session.log.warn({ via: via.join(', ') }, 'http: forwarding loop refused');
  refuse(error);
  session.fail(error);
  return Promise.resolve();
}
