/** What an association moved each way, and when it last moved anything (for its idle timer). */
export interface Traffic {
  /** A client datagram of `bytes` accepted for relaying. */
  up(bytes: number): void;
  /** A reply of `bytes` sent to the client. */
  down(bytes: number): void;
  /** `performance.now()` of the last datagram either way (or of the start). */
  readonly lastActivity: number;
  totals(): TrafficTotals;
}

export interface TrafficTotals {
  readonly up: number;
  readonly down: number;
  readonly datagramsUp: number;
  readonly datagramsDown: number;
}

export function createTraffic(): Traffic {
  const totals = { up: 0, down: 0, datagramsUp: 0, datagramsDown: 0 };
  let lastActivity = performance.now();
  return {
    up(bytes) {
      totals.up += bytes;
      totals.datagramsUp += 1;
      lastActivity = performance.now();
    },
    down(bytes) {
      totals.down += bytes;
      totals.datagramsDown += 1;
      lastActivity = performance.now();
    },
    get lastActivity() {
      return lastActivity;
    },
    totals: () => ({ ...totals }),
  };
}
