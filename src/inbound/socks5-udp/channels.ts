import type { ProxyError } from '../../errors.js';
import type { QueueBudget, UdpChannel, UdpOutbound } from '../../outbound/udp-types.js';
import type { Session } from '../../session.js';
import type { Target } from '../../target.js';
import type { DropCounter } from './drops.js';

/**
 * The association's outbound channels: one per outbound it uses, opened when the first datagram
 * is routed there (connect_timeout bounds the opening), shared by every target routed there, and
 * closed with the association. Replies from all of them go to `onReply`.
 */
export interface Channels {
  /** The channel to outbound `name`, opened on first use. Rejects only with ProxyError. */
  open(name: string, udp: UdpOutbound): Promise<UdpChannel>;
  /** The outbounds used, in order of first use, for the access-log line. */
  names(): string[];
  /** Closes every channel, and any still opening once it opens. */
  close(): void;
}

export interface ChannelsOptions {
  /** Aborted when the association ends. */
  readonly signal: AbortSignal;
  readonly connectTimeout: number;
  readonly session: Pick<Session, 'log'>;
  readonly drops: DropCounter;
  /** A channel can no longer carry datagrams (its upstream closed): the association ends. */
  readonly failed: (err: ProxyError) => void;
  readonly queue: QueueBudget;
  readonly onReply: (from: Target, payload: Buffer) => void;
}

export function createChannels(options: ChannelsOptions): Channels {
  const { signal, connectTimeout, session, drops, failed, queue, onReply } = options;
  const byName = new Map<string, Promise<UdpChannel>>();
  const opened: UdpChannel[] = [];
  let closed = false;
  return {
    open(name, udp) {
      const known = byName.get(name);
      if (known) return known;
      const opening = udp
        .open({
          signal: AbortSignal.any([signal, AbortSignal.timeout(connectTimeout)]),
          deadline: Date.now() + connectTimeout,
          log: session.log,
          dropped: (kind, detail) => {
            drops.dropped(kind, detail);
          },
          failed,
          queue,
        })
        .then((channel) => {
          opened.push(channel);
          if (closed) channel.close();
          else channel.onMessage(onReply);
          return channel;
        });
      byName.set(name, opening);
      return opening;
    },
    names: () => [...byName.keys()],
    close() {
      closed = true;
      for (const channel of opened) channel.close();
    },
  };
}
