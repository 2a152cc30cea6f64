/**
 * RFC 1928 §4 UDP ASSOCIATE (server side) and §7 procedure for UDP-based clients: one
 * association per request. The relay socket is bound on the address the client reached, and
 * the success reply names it (or `udp_advertise`). Datagrams are taken only from the client's IP,
 * and from its declared port (or, when it declared none, the port of its first valid datagram);
 * FRAG != 0 is dropped. Each datagram is routed by its own target through the rules and handed
 * to the UDP side of the chosen outbound; replies come back wrapped in the §7 header naming their
 * real source. The association, and every socket it opened, ends with its TCP control
 * connection or after `udp_idle_timeout` without a datagram either way, with one access-log line.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { isIP, type Socket } from 'node:net';
import { errorCode, ProxyError, socks5Reply } from '../errors.js';
import {
  createQueueBudget,
  MAX_SEND_QUEUE_BYTES,
  type UdpChannel,
  type UdpDrop,
  type UdpOutbound,
} from '../outbound/udp-types.js';
import type { Session } from '../session.js';
import { formatTarget, parseHost, type Target } from '../target.js';
import { encodeSocks5Reply } from './socks-codec.js';
import { openSession, refuse, type SocksReplies } from './socks-connect.js';
import { encodeUdpHeader, parseUdpDatagram } from './socks-udp-codec.js';
import type { AssociateHandler, Socks5Client } from './socks5.js';
import type { ProtocolEnv } from './types.js';

/**
 * Distinct targets per association. DNS, QUIC, VoIP and games talk to a handful; 256 leaves ample
 * room while bounding what one association keeps (a routing decision and a queue head per target,
 * a few hundred bytes each) and how many router walks a flood of new targets can cost. Past it,
 * datagrams to new targets are dropped and counted; known targets keep working.
 */
export const MAX_TARGETS = 256;
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
/** The largest UDP payload over IPv4 (65,535 - 20 - 8): a wrapped reply must fit in it. */
export const MAX_UDP_PAYLOAD = 65_507;

/** Drops a hostile network can cause at will: logged at debug, the rest at info. */
const QUIET_DROPS: ReadonlySet<UdpDrop> = new Set([
  'foreign_source',
  'foreign_reply',
  'malformed',
  'fragmented',
]);

const replies: SocksReplies = {
  success: (bound) => encodeSocks5Reply(0x00, bound),
  failure: (err) => encodeSocks5Reply(socks5Reply(err)),
};

export function createAssociateHandler(env: ProtocolEnv): AssociateHandler {
  return async (client, declared) => {
    const session = openSession({ ...client, protocol: 'socks5-udp' }, client.user, declared);
    const { socket, allowed } = client.accepted;
    if (!allowed) {
      const notAllowed = new ProxyError('NOT_ALLOWED', 'client address not allowed');
      await refuse(session, socket, notAllowed, replies);
      return;
    }
    let relay: UdpSocket;
    try {
      relay = await bindRelay(localIp(socket));
    } catch (err) {
      const reason = `cannot bind the UDP relay: ${errorCode(err) ?? 'failed'}`;
      await refuse(session, socket, new ProxyError('INTERNAL', reason), replies);
      return;
    }
    const { address, port } = relay.address();
    const advertised = env.config.udp_advertise;
    const host = parseHost(advertised ?? address);
    socket.write(replies.success(host && { host, port }));
    await associate(client, declared, session, relay);
  };
}

/** Runs one association until it ends; never rejects. */
function associate(
  client: Socks5Client,
  declared: Target,
  session: Session,
  relay: UdpSocket,
): Promise<void> {
  const { env, accepted, user } = client;
  const { socket: control, source } = accepted;
  const runtime = env.runtime();
  const { limits } = runtime;
  const inbound = env.config.name;
  // The client's IP is the control connection's; its port is the declared one, or learned.
  let clientPort: number | undefined = declared.port === 0 ? undefined : declared.port;
  const controller = new AbortController();
  const budget = createQueueBudget(MAX_QUEUED_BYTES, MAX_QUEUED_DATAGRAMS);
  const targets = new Map<string, Slot>();
  const channels = new Map<string, Promise<UdpChannel>>();
  const opened: UdpChannel[] = [];
  const drops = new Map<UdpDrop, number>();
  const logged = new Set<string>();
  const counts = { up: 0, down: 0, datagramsUp: 0, datagramsDown: 0 };
  let lastActivity = performance.now();
  let idleTimer: NodeJS.Timeout | undefined;
  let controlError: ProxyError | undefined;
  let ended = false;
  let done: () => void = () => undefined;

  const dropped = (kind: UdpDrop, detail: string, once: string = kind): void => {
    drops.set(kind, (drops.get(kind) ?? 0) + 1);
    if (logged.has(once)) return;
    logged.add(once);
    const level = QUIET_DROPS.has(kind) ? 'debug' : 'info';
    session.log[level](
      { drop: kind, detail },
      'UDP datagram dropped (logged once per association)',
    );
  };

  const end = (error: ProxyError | undefined): void => {
    if (ended) return;
    ended = true;
    clearTimeout(idleTimer);
    controller.abort(new ProxyError('CLIENT_CLOSED', 'UDP association ended'));
    relay.close();
    for (const channel of opened) channel.close();
    for (const slot of targets.values()) {
      for (const payload of slot.queue ?? []) budget.give(payload.length);
    }
    targets.clear();
    session.finish({
      up: counts.up,
      down: counts.down,
      error,
      extra: {
        datagrams_up: counts.datagramsUp,
        datagrams_down: counts.datagramsDown,
        outbounds: [...channels.keys()],
        ...(drops.size > 0 ? { dropped: Object.fromEntries(drops) } : {}),
      },
    });
    done();
  };

  // Replies from every outbound channel, wrapped and sent to the client.
  const onSent = (err: Error | null): void => {
    if (err) dropped('send_failed', errorCode(err) ?? err.message);
  };
  const reply = (from: Target, payload: Buffer): void => {
    if (ended || clientPort === undefined) return;
    const header = encodeUdpHeader(from);
    if (header.length + payload.length > MAX_UDP_PAYLOAD) {
      dropped('too_big', `a ${payload.length}-byte reply from ${formatTarget(from)}`);
      return;
    }
    if (relay.getSendQueueSize() > MAX_SEND_QUEUE_BYTES) {
      dropped('send_queue_full', `more than ${MAX_SEND_QUEUE_BYTES} bytes waiting for the client`);
      return;
    }
    counts.datagramsDown += 1;
    counts.down += payload.length;
    lastActivity = performance.now();
    relay.send([header, payload], clientPort, source.ip, onSent);
  };

  const channelFor = (name: string, outbound: UdpOutbound): Promise<UdpChannel> => {
    const known = channels.get(name);
    if (known) return known;
    const signal = AbortSignal.any([
      controller.signal,
      AbortSignal.timeout(limits.connect_timeout),
    ]);
    const opening = outbound
      .open({
        signal,
        deadline: Date.now() + limits.connect_timeout,
        log: session.log,
        dropped,
        failed: end,
        queue: budget,
      })
      .then((channel) => {
        opened.push(channel);
        if (ended) channel.close();
        channel.onMessage(reply);
        return channel;
      });
    channels.set(name, opening);
    return opening;
  };

  /** Routes a new target, opens its outbound's channel, then sends what queued meanwhile. */
  const route = async (slot: Slot): Promise<void> => {
    const input = { inbound, source, user, target: slot.target };
    try {
      const decision = await runtime.router.decide(input, controller.signal);
      const udp = runtime.outbounds.get(decision.outbound)?.udp;
      if (udp) {
        settle(slot, await channelFor(decision.outbound, udp));
      } else {
        const detail = `outbound "${decision.outbound}" cannot carry UDP`;
        settle(slot, { kind: 'no_udp', detail, once: `no_udp ${decision.outbound}` });
      }
    } catch (err) {
      // An outbound that should carry UDP and cannot (its upstream refused or is unreachable)
      // fails the association, as a failed dial fails a CONNECT: the client sees its TCP close.
      if (!ended) end(err instanceof ProxyError ? err : new ProxyError('INTERNAL', 'UDP routing'));
    }
  };
  const settle = (slot: Slot, to: UdpChannel | Refusal): void => {
    if (ended) return;
    const queued = slot.queue ?? [];
    slot.queue = undefined;
    slot.to = to;
    for (const payload of queued) {
      budget.give(payload.length);
      deliver(slot, payload);
    }
  };
  const deliver = (slot: Slot, payload: Buffer): void => {
    const { to } = slot;
    if (to === undefined) {
      if (budget.take(payload.length)) (slot.queue ??= []).push(payload);
      else dropped('queue_full', `${formatTarget(slot.target)} is not routed yet`);
    } else if ('send' in to) {
      to.send(slot.target, payload);
    } else {
      dropped(to.kind, to.detail, to.once);
    }
  };

  relay.on('message', (message: Buffer, rinfo: RemoteInfo) => {
    if (ended) return;
    if (rinfo.address !== source.ip || (clientPort !== undefined && rinfo.port !== clientPort)) {
      dropped('foreign_source', `from ${rinfo.address}:${rinfo.port}`);
      return;
    }
    const parsed = parseUdpDatagram(message);
    if (parsed.kind === 'error') {
      dropped('malformed', parsed.reason);
      return;
    }
    const { frag, target, payload } = parsed.value;
    if (frag !== 0) {
      dropped('fragmented', `FRAG ${frag}: fragments are not reassembled`);
      return;
    }
    clientPort ??= rinfo.port;
    counts.datagramsUp += 1;
    counts.up += payload.length;
    lastActivity = performance.now();
    const key = formatTarget(target);
    let slot = targets.get(key);
    if (!slot) {
      if (targets.size >= MAX_TARGETS) {
        dropped('too_many_targets', `more than ${MAX_TARGETS} targets; ${key} is one too many`);
        return;
      }
      slot = { target, to: undefined, queue: undefined };
      targets.set(key, slot);
      void route(slot);
    }
    deliver(slot, payload);
  });
  relay.on('error', (err) => {
    session.log.debug({ code: errorCode(err) }, 'UDP relay socket error');
  });

  // RFC 1928 §7: the association lives as long as its TCP connection, which carries nothing more.
  control.on('data', () => undefined);
  control.on('error', (err) => {
    const reason = `control connection: ${errorCode(err) ?? err.message}`;
    controlError ??= err instanceof ProxyError ? err : new ProxyError('CLIENT_CLOSED', reason);
  });
  control.once('end', () => end(undefined));
  control.once('close', () => end(controlError));
  control.resume();

  const idleMs = limits.udp_idle_timeout;
  const checkIdle = (): void => {
    const idle = performance.now() - lastActivity;
    if (idle >= idleMs) end(new ProxyError('IDLE_TIMEOUT', `no datagrams for ${idleMs}ms`));
    else idleTimer = setTimeout(checkIdle, idleMs - idle);
  };
  // One timer re-armed when it fires, not on every datagram.
  if (idleMs > 0) idleTimer = setTimeout(checkIdle, idleMs);

  return new Promise<void>((resolve) => {
    done = resolve;
    // Closed while the relay was being bound: the events above have already fired.
    if (control.destroyed || control.readableEnded) end(controlError);
  });
}

/** Why a target's datagrams are dropped for the rest of the association. */
interface Refusal {
  readonly kind: UdpDrop;
  readonly detail: string;
  readonly once: string;
}

interface Slot {
  readonly target: Target;
  /** undefined while routing and opening; then the channel, or why its datagrams are dropped. */
  to: UdpChannel | Refusal | undefined;
  /** What arrived meanwhile, within the association's budget. */
  queue: Buffer[] | undefined;
}

function bindRelay(ip: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const relay = createSocket({ type: isIP(ip) === 6 ? 'udp6' : 'udp4' });
    relay.once('error', (err) => {
      relay.close();
      reject(err);
    });
    relay.bind(0, ip, () => {
      relay.removeAllListeners('error');
      resolve(relay);
    });
  });
}

/**
 * The address the client reached: a specific listen address, or for a 0.0.0.0/:: listener the
 * TCP connection's local address, IPv4-mapped IPv6 written as IPv4 (dgram binds it as IPv4).
 */
function localIp(socket: Socket): string {
  const ip = socket.localAddress ?? '127.0.0.1';
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
