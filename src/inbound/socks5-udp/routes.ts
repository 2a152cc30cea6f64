/**
 * The association's routing table. Each datagram is routed by its own target: the first one to
 * a target asks `resolve` (the rules, then the chosen outbound's channel), and later ones follow
 * the answer without asking again. What arrives meanwhile waits within the association's queue
 * budget; a target that cannot be reached (reject, an outbound without UDP) drops its datagrams
 * for the rest of the association.
 */
import { ProxyError, toProxyError } from '../../errors.js';
import type { QueueBudget, UdpChannel, UdpDrop } from '../../outbound/udp-types.js';
import { formatTarget, type Target } from '../../target.js';
import type { DropCounter } from './drops.js';

/**
 * Distinct targets per association. DNS, QUIC, VoIP and games talk to a handful; 256 leaves ample
 * room while bounding what one association keeps (a routing decision and a queue head per target,
 * a few hundred bytes each) and how many router walks a flood of new targets can cost. Past it,
 * datagrams to new targets are dropped and counted; known targets keep working.
 */
export const MAX_TARGETS = 256;

/** Why a target's datagrams are dropped for the rest of the association. */
export interface Refusal {
  readonly kind: UdpDrop;
  readonly detail: string;
  /** Its drops are logged once per distinct `once` (e.g. once per outbound without UDP). */
  readonly once: string;
}

/** Where a target's datagrams go. */
export type Destination = UdpChannel | Refusal;

export interface RouteTableOptions {
  /** Routes a new target; rejects (with a ProxyError) only when the association must end. */
  readonly resolve: (target: Target) => Promise<Destination>;
  readonly budget: QueueBudget;
  readonly drops: DropCounter;
  /** Routing failed in a way that ends the association. */
  readonly failed: (err: ProxyError) => void;
}

export interface RouteTable {
  /** Sends one client datagram on its way, or queues it while its target is being routed. */
  send(target: Target, payload: Buffer): void;
  /** Gives back the budget of everything queued; later datagrams and answers are ignored. */
  close(): void;
}

interface Slot {
  readonly target: Target;
  /** undefined while routing; then where the target's datagrams go. */
  to: Destination | undefined;
  /** What arrived while routing, within the budget. */
  queue: Buffer[];
}

export function createRouteTable(options: RouteTableOptions): RouteTable {
  const { resolve, budget, drops, failed } = options;
  const slots = new Map<string, Slot>();
  let closed = false;

  const deliver = (slot: Slot, payload: Buffer): void => {
    const { to } = slot;
    if (to === undefined) {
      if (budget.take(payload.length)) slot.queue.push(payload);
      else drops.dropped('queue_full', `${formatTarget(slot.target)} is not routed yet`);
    } else if ('send' in to) {
      to.send(slot.target, payload);
    } else {
      drops.dropped(to.kind, to.detail, to.once);
    }
  };

  const route = async (slot: Slot): Promise<void> => {
    try {
      const to = await resolve(slot.target);
      if (closed) return;
      const queued = slot.queue;
      slot.queue = [];
      slot.to = to;
      for (const payload of queued) {
        budget.give(payload.length);
        deliver(slot, payload);
      }
    } catch (err) {
      // An outbound that should carry UDP and cannot (its upstream refused or is unreachable)
      // fails the association, as a failed dial fails a CONNECT: the client sees its TCP close.
      if (!closed) failed(toProxyError(err, new ProxyError('INTERNAL', 'UDP routing')));
    }
  };

  return {
    send(target, payload) {
      if (closed) return;
      const key = formatTarget(target);
      let slot = slots.get(key);
      if (!slot) {
        if (slots.size >= MAX_TARGETS) {
          drops.dropped(
            'too_many_targets',
            `more than ${MAX_TARGETS} targets; ${key} is one too many`,
          );
          return;
        }
        slot = { target, to: undefined, queue: [] };
        slots.set(key, slot);
        void route(slot);
      }
      deliver(slot, payload);
    },
    close() {
      if (closed) return;
      closed = true;
      for (const slot of slots.values()) {
        for (const payload of slot.queue) budget.give(payload.length);
      }
      slots.clear();
    },
  };
}
