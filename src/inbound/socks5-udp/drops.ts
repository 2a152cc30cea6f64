import type { UdpDrop } from '../../outbound/udp-types.js';
import type { Session } from '../../session.js';

/** Drops a hostile network can cause at will: logged at debug, the rest at info. */
const QUIET_DROPS: ReadonlySet<UdpDrop> = new Set([
  'foreign_source',
  'foreign_reply',
  'malformed',
  'fragmented',
]);

/** What one association dropped: every datagram counted, the first of each kind logged. */
export interface DropCounter {
  /**
   * Counts one dropped datagram. The first drop of each `once` key (the kind, unless given) is
   * logged, so a flood costs a counter increment per datagram, not a log line.
   */
  dropped(kind: UdpDrop, detail: string, once?: string): void;
  /** The counts by kind for the access-log line; undefined when nothing was dropped. */
  counts(): Readonly<Record<string, number>> | undefined;
}

export function createDropCounter(session: Pick<Session, 'log'>): DropCounter {
  const drops = new Map<UdpDrop, number>();
  const logged = new Set<string>();
  return {
    dropped(kind, detail, once = kind) {
      drops.set(kind, (drops.get(kind) ?? 0) + 1);
      if (logged.has(once)) return;
      logged.add(once);
      const level = QUIET_DROPS.has(kind) ? 'debug' : 'info';
      session.log[level](
        { drop: kind, detail },
        'UDP datagram dropped (logged once per association)',
      );
    },
    counts: () => (drops.size > 0 ? Object.fromEntries(drops) : undefined),
  };
}
