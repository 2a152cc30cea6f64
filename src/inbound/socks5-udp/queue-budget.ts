import type { QueueBudget } from '../../outbound/udp-types.js';

/** An estimate of a queued entry's own memory: its object, array slot and Buffer view. */
export const QUEUE_ENTRY_COST = 96;

/**
 * A byte and count allowance for datagrams held in memory while something is pending. Each
 * queued datagram also costs QUEUE_ENTRY_COST bytes, so a flood of tiny datagrams is bounded by
 * its memory, not only by its payload.
 */
export function createQueueBudget(maxBytes: number, maxCount: number): QueueBudget {
  let bytes = 0;
  let count = 0;
  return {
    take(size) {
      const cost = size + QUEUE_ENTRY_COST;
      if (count >= maxCount || bytes + cost > maxBytes) return false;
      bytes += cost;
      count += 1;
      return true;
    },
    give(size) {
      bytes = Math.max(0, bytes - size - QUEUE_ENTRY_COST);
      count = Math.max(0, count - 1);
    },
  };
}
