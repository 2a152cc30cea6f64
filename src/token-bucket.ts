/**
 * A token bucket in bytes, allowed to go into debt: a chunk already read is always let through
 * whole, and whoever took it waits until the debt is paid back. Several streams sharing one
 * bucket each wait for the debt as it stands after their own take, so together they keep to the
 * rate. The burst (the bucket's capacity) is one second's worth of the rate.
 */
export interface TokenBucket {
  /** Takes `bytes`; returns how many milliseconds to wait before taking more (0: none). */
  take(bytes: number): number;
  /** A new rate from now on (Infinity: no limit); what is owed is owed at the new rate. */
  setRate(bytesPerSecond: number): void;
  readonly rate: number;
}

export function createTokenBucket(
  bytesPerSecond: number,
  now: () => number = () => performance.now(),
): TokenBucket {
  let rate = bytesPerSecond;
  let tokens = rate;
  let last = now();
  const refill = (): void => {
    const at = now();
    const elapsed = at - last;
    last = at;
    if (rate === Infinity) tokens = Infinity;
    else if (elapsed > 0) tokens = Math.min(rate, tokens + (elapsed * rate) / 1000);
  };
  return {
    take(bytes) {
      refill();
      if (rate === Infinity) return 0;
      tokens -= bytes;
      return tokens >= 0 ? 0 : Math.ceil((-tokens * 1000) / rate);
    },
    setRate(next) {
      refill();
      rate = next;
      tokens = Math.min(tokens, rate);
    },
    get rate() {
      return rate;
    },
  };
}

/** The wait before more may pass through every one of `buckets`, each charged `bytes`. */
export function takeFromAll(buckets: readonly TokenBucket[], bytes: number): number {
  let wait = 0;
  for (const bucket of buckets) wait = Math.max(wait, bucket.take(bytes));
  return wait;
}
