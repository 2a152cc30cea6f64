import type { ProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Target } from '../target.js';

/**
 * Why a datagram was not relayed. Each is counted per association and logged once per association
 * (the first time it happens), never per datagram.
 */
export type UdpDrop =
  /** From another IP than the client's, or another port than its declared (or learned) one. */
  | 'foreign_source'
  /** Not a valid RFC 1928 §7 frame (RSV != 0, bad ATYP, truncated, bad name, port 0). */
  | 'malformed'
  /** FRAG != 0: reassembly is optional in RFC 1928 and not implemented. */
  | 'fragmented'
  /** A new target past the per-association cap on distinct targets. */
  | 'too_many_targets'
  /** Queued while an outbound was opening or a name resolving, past the byte/count cap. */
  | 'queue_full'
  /** The socket's own send queue is past its cap: the receiver (or the network) is slower. */
  | 'send_queue_full'
  /** The rule chose an outbound that cannot carry UDP (http, https, socks4, multi-hop chains). */
  | 'no_udp'
  /** The rule said reject. */
  | 'rejected'
  /** deny_destinations covers the address (after DNS for names). */
  | 'denied'
  | 'dns_failed'
  /** A reply too big to fit in one datagram with the SOCKS5 UDP header in front of it. */
  | 'too_big'
  /** The kernel refused a send (EMSGSIZE, ENETUNREACH, ...). */
  | 'send_failed'
  /** A datagram to a direct socket from an address the association never sent to. */
  | 'foreign_reply'
  /** An upstream relay's datagram that is not a valid frame (or a fragment). */
  | 'malformed_reply';

/**
 * Bytes a socket may hold in libuv's send queue (what the kernel did not take at once) before
 * datagrams are dropped: 256 KiB is about 180 full-size Ethernet datagrams, well past any burst
 * a healthy path queues, and it bounds a flood towards a slow receiver. UDP may drop; a proxy
 * that buffers without bound would only delay the same loss and pay for it in memory.
 */
export const MAX_SEND_QUEUE_BYTES = 256 * 1024;

/** What an outbound gets when an association opens its UDP side. */
export interface UdpOpenContext {
  /** Aborted when opening takes longer than connect_timeout or the association ends first. */
  readonly signal: AbortSignal;
  /** When connect_timeout ends (`Date.now()` ms). */
  readonly deadline: number;
  readonly log: Logger;
  /** A datagram was dropped: the association counts it and logs the first of each kind. */
  dropped(kind: UdpDrop, detail: string): void;
  /** The channel can no longer carry datagrams (its upstream closed): the association ends. */
  failed(err: ProxyError): void;
  /** Shared by everything one association queues, so the association's total stays bounded. */
  readonly queue: QueueBudget;
}

/** The UDP side of one outbound for one association. */
export interface UdpChannel {
  /** Never throws and never blocks: what cannot be sent now is queued (bounded) or dropped. */
  send(target: Target, payload: Buffer): void;
  /** Replies: `from` is the real source (an IP), as the client must be told. */
  onMessage(fn: (from: Target, payload: Buffer) => void): void;
  /** Closes every socket the channel opened; idempotent. */
  close(): void;
}

/** The UDP side of an outbound (`Outbound.udp`): opens one channel per association. */
export interface UdpOutbound {
  /** Resolves once datagrams can be sent; rejects only with ProxyError. */
  open(context: UdpOpenContext): Promise<UdpChannel>;
}

/**
 * A byte and count allowance for datagrams held in memory while something is pending (an
 * outbound opening, a name resolving), shared by everything one association queues.
 */
export interface QueueBudget {
  /** Takes room for one datagram of `bytes`; false when there is none (drop it). */
  take(bytes: number): boolean;
  /** Gives back the room of a datagram that was sent or dropped. */
  give(bytes: number): void;
}
