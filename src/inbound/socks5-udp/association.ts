/**
 * RFC 1928 §7, one UDP association from the success reply to its access-log line, put together
 * from parts with one job each: the client gate admits datagrams arriving on the relay socket,
 * the route table sends each towards its target's outbound channel, the reply path wraps what
 * comes back for the client, and the lifetime ends it all once. Ending closes the relay socket
 * and every channel, and writes the one access-log line.
 */
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import { errorCode, ProxyError } from '../../errors.js';
import type { Session } from '../../session.js';
import type { Target } from '../../target.js';
import type { Socks5Client } from '../socks5.js';
import { createChannels } from './channels.js';
import { createClientGate } from './client-gate.js';
import { createDropCounter } from './drops.js';
import { watchLifetime } from './lifetime.js';
import { createQueueBudget } from './queue-budget.js';
import { createReplyPath } from './replies.js';
import { createRouteTable, type Destination } from './routes.js';
import { createTraffic } from './traffic.js';

/**
 * Bytes held per association while a target is being routed, an outbound opening (an upstream
 * SOCKS5 handshake takes a few round trips) or a name resolving: 64 KiB holds one datagram of the
 * largest size (65,507 bytes) or a burst of about 40 full-size Ethernet ones, and caps what a
 * flood can pin at 64 KiB per association. Each entry is charged QUEUE_ENTRY_COST on top of its
 * payload, and at most 256 entries are held, so tiny datagrams cannot add up either. Beyond that,
 * datagrams are dropped, as UDP allows.
 */
export const MAX_QUEUED_BYTES = 64 * 1024;
export const MAX_QUEUED_DATAGRAMS = 256;

/**
 * Runs one association on `relay` (bound, and announced to the client) until it ends; never
 * rejects. `declared` is the client's DST.ADDR/DST.PORT: where it says it will send from.
 */
export function runAssociation(
  client: Socks5Client,
  declared: Target,
  session: Session,
  relay: UdpSocket,
): Promise<void> {
  const { env, accepted, user } = client;
  const runtime = env.runtime();
  const { limits } = runtime;
  const controller = new AbortController();
  const drops = createDropCounter(session);
  const traffic = createTraffic();
  const budget = createQueueBudget(MAX_QUEUED_BYTES, MAX_QUEUED_DATAGRAMS);
  const gate = createClientGate(accepted.source.ip, declared.port);
  const replies = createReplyPath(relay, gate, drops, traffic);

  return new Promise<void>((resolve) => {
    const failed = (err: ProxyError): void => {
      lifetime.end(err);
    };
    const channels = createChannels({
      signal: controller.signal,
      connectTimeout: limits.connect_timeout,
      session,
      drops,
      failed,
      queue: budget,
      onReply: (from, payload) => {
        replies.send(from, payload);
      },
    });
    /** The rules pick an outbound for the target; its UDP side, if it has one, carries it. */
    const resolveTarget = async (target: Target): Promise<Destination> => {
      const input = { inbound: env.config.name, source: accepted.source, user, target };
      const decision = await runtime.router.decide(input, controller);
      const udp = runtime.outbounds.get(decision.outbound)?.udp;
      if (udp) return channels.open(decision.outbound, udp);
      const detail = `outbound "${decision.outbound}" cannot carry UDP`;
      return { kind: 'no_udp', detail, once: `no_udp ${decision.outbound}` };
    };
    const routes = createRouteTable({ resolve: resolveTarget, budget, drops, failed });

    relay.on('message', (message: Buffer, from: RemoteInfo) => {
      const admitted = gate.admit(message, from);
      if (admitted.kind === 'drop') {
        drops.dropped(admitted.drop, admitted.detail);
        return;
      }
      traffic.up(admitted.payload.length);
      routes.send(admitted.target, admitted.payload);
    });
    relay.on('error', (err) => {
      session.log.debug({ code: errorCode(err) }, 'UDP relay socket error');
    });

    const lifetime = watchLifetime(accepted.socket, limits.udp_idle_timeout, traffic, (error) => {
      controller.abort(new ProxyError('CLIENT_CLOSED', 'UDP association ended'));
      replies.close();
      routes.close();
      channels.close();
      relay.close();
      const totals = traffic.totals();
      const dropped = drops.counts();
      session.finish({
        up: totals.up,
        down: totals.down,
        error,
        extra: {
          datagrams_up: totals.datagramsUp,
          datagrams_down: totals.datagramsDown,
          outbounds: channels.names(),
          ...(dropped ? { dropped } : {}),
        },
      });
      resolve();
    });
  });
}
