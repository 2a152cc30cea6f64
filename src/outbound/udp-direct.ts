// RFC 768 datagrams sent by the gateway itself: the UDP side of the `direct` outbound.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { errorCode } from '../errors.js';
import type { DestinationPolicy } from '../policy.js';
import { formatTarget, parseHost, type Host, type Target } from '../target.js';
import {
  MAX_SEND_QUEUE_BYTES,
  type UdpChannel,
  type UdpOpenContext,
  type UdpOutbound,
} from './udp-types.js';

/**
 * The direct outbound for UDP: one dgram socket per address family per association, opened on
 * the first datagram of that family, bound to an ephemeral port on every address (`0.0.0.0`,
 * `::` with ipv6Only), so replies reach this association only. Names are resolved here, and
 * deny_destinations applies to every address, as it does for TCP.
 *
 * Replies are filtered as an address-dependent NAT filters (RFC 4787 §5): a datagram is passed
 * on only when it comes from an IP address this association has sent to, from any of its ports
 * (a TFTP, STUN or game server may answer from another port). Anyone else who learns the
 * socket's port is dropped and counted as `foreign_reply`.
 */
export function createDirectUdp(policy: DestinationPolicy): UdpOutbound {
  return { open: (context) => Promise.resolve(openDirect(policy, context)) };
}

function openDirect(policy: DestinationPolicy, context: UdpOpenContext): UdpChannel {
  const sockets: { ipv4?: Socket; ipv6?: Socket } = {};
  const peers = createPeerSet();
  let deliver: ((from: Target, payload: Buffer) => void) | undefined;
  let closed = false;
  let errorLogged = false;
  // One callback for every send, rather than a closure per datagram.
  const onSent = (err: Error | null): void => {
    if (err) context.dropped('send_failed', errorCode(err) ?? err.message);
  };
  const onMessage = (kind: 'ipv4' | 'ipv6') => (payload: Buffer, rinfo: RemoteInfo) => {
    if (!peers.has(rinfo.address)) {
      context.dropped('foreign_reply', `from ${formatTarget(fromRemote(rinfo))}`);
      return;
    }
    deliver?.({ host: { kind, ip: rinfo.address }, port: rinfo.port }, payload);
  };
  const socketFor = (kind: 'ipv4' | 'ipv6'): Socket => {
    const known = sockets[kind];
    if (known) return known;
    const socket =
      kind === 'ipv4' ? createSocket('udp4') : createSocket({ type: 'udp6', ipv6Only: true });
    socket.on('message', onMessage(kind));
    socket.on('error', (err) => {
      if (errorLogged) return;
      errorLogged = true;
      context.log.info({ code: errorCode(err) ?? err.message }, 'direct UDP socket error');
    });
    // Exclusive: in a worker process, a cluster-shared socket would be bound by the primary.
    socket.bind({ port: 0, address: kind === 'ipv4' ? '0.0.0.0' : '::', exclusive: true });
    sockets[kind] = socket;
    return socket;
  };
  const sendTo = (to: Target, payload: Buffer): void => {
    if (closed || to.host.kind === 'domain') return;
    const socket = socketFor(to.host.kind);
    if (socket.getSendQueueSize() > MAX_SEND_QUEUE_BYTES) {
      context.dropped('send_queue_full', `more than ${MAX_SEND_QUEUE_BYTES} bytes waiting`);
      return;
    }
    peers.add(to.host.ip);
    socket.send(payload, to.port, to.host.ip, onSent);
  };
  const resolver = createUdpResolver(policy, context);

  return {
    send(target, payload) {
      if (!closed) resolver.resolve(target, payload, sendTo);
    },
    onMessage(fn) {
      deliver = fn;
    },
    close() {
      if (closed) return;
      closed = true;
      resolver.clear();
      sockets.ipv4?.close();
      sockets.ipv6?.close();
    },
  };
}

/**
 * The IP addresses an association has sent to. It holds at most one address per target, and the
 * association caps its distinct targets. Addresses are compared as the kernel writes them
 * (inet_ntop, RFC 5952), which is how parseHost normalises them too; an IPv6 address that misses
 * is normalised once more before it counts as foreign.
 */
function createPeerSet(): { add(ip: string): void; has(ip: string): boolean } {
  const ips = new Set<string>();
  return {
    add(ip) {
      ips.add(ip);
    },
    has(ip) {
      if (ips.has(ip)) return true;
      const host = ip.includes(':') ? parseHost(ip) : undefined;
      return host !== undefined && host.kind !== 'domain' && ips.has(host.ip);
    },
  };
}

function fromRemote(rinfo: RemoteInfo): Target {
  const kind = rinfo.family === 'IPv6' ? 'ipv6' : 'ipv4';
  return { host: { kind, ip: rinfo.address }, port: rinfo.port };
}

export interface UdpResolver {
  /**
   * Hands `payload` to `deliver` with the target's address: at once for an allowed IP literal,
   * after one lookup per name (cached for the association, queued within its budget meanwhile).
   * Denied addresses and failed lookups are dropped and reported.
   */
  resolve(target: Target, payload: Buffer, deliver: (to: Target, payload: Buffer) => void): void;
  /** Forgets the cache and gives back what is queued. */
  clear(): void;
}

interface Waiting {
  readonly port: number;
  readonly payload: Buffer;
  readonly deliver: (to: Target, payload: Buffer) => void;
}

type NameState = { readonly host: Host } | { readonly waiting: Waiting[] };

/**
 * Names are resolved with dns.lookup (the OS resolver, as TCP does), IPv4 first: a datagram has
 * no Happy Eyeballs to fall back with, and IPv4 is the family more hosts can actually reach.
 * The cache lives as long as the association and holds at most one entry per distinct target,
 * which the association caps; a failed lookup is not cached, so the next datagram tries again.
 */
export function createUdpResolver(
  policy: DestinationPolicy,
  context: Pick<UdpOpenContext, 'dropped' | 'queue'>,
): UdpResolver {
  const names = new Map<string, NameState>();
  let generation = 0;

  const settle = (name: string, waiting: Waiting[], host: Host | undefined, why: string): void => {
    if (host) names.set(name, { host });
    else names.delete(name);
    for (const w of waiting) {
      context.queue.give(w.payload.length);
      if (host) w.deliver({ host, port: w.port }, w.payload);
    }
    if (!host && waiting.length > 0) {
      context.dropped(why === 'denied' ? 'denied' : 'dns_failed', `${name}: ${why}`);
    }
  };

  const lookup = (name: string, waiting: Waiting[]): void => {
    const started = generation;
    dnsLookup(name, { all: true, order: 'ipv4first' }, (err, addresses: LookupAddress[]) => {
      if (started !== generation) return;
      if (err) {
        settle(name, waiting, undefined, errorCode(err) ?? 'lookup failed');
        return;
      }
      const allowed = addresses.find((a) => policy.allows(a.address));
      const host = allowed && parseHost(allowed.address);
      settle(name, waiting, host, 'denied');
    });
  };

  return {
    resolve(target, payload, deliver) {
      const { host } = target;
      if (host.kind !== 'domain') {
        if (policy.allows(host.ip)) deliver(target, payload);
        else context.dropped('denied', `${formatTarget(target)}: destination not allowed`);
        return;
      }
      const state = names.get(host.name);
      if (state && 'host' in state) {
        deliver({ host: state.host, port: target.port }, payload);
        return;
      }
      if (!context.queue.take(payload.length)) {
        context.dropped('queue_full', `${host.name} is still resolving`);
        return;
      }
      const entry = { port: target.port, payload, deliver };
      if (state) {
        state.waiting.push(entry);
        return;
      }
      const waiting = [entry];
      names.set(host.name, { waiting });
      lookup(host.name, waiting);
    },
    clear() {
      generation += 1;
      for (const state of names.values()) {
        if ('waiting' in state) for (const w of state.waiting) context.queue.give(w.payload.length);
      }
      names.clear();
    },
  };
}
