const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * The longest delay a Node timer can wait: past 2^31-1 ms (about 24.8 days) setTimeout fires
 * after 1 ms instead, so every duration of the configuration is bounded by this.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** "500ms", "10s", "5m", "1h", or a sum such as "1m30s". Returns milliseconds, or undefined. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (const match of trimmed.matchAll(re)) {
    const [whole, amount = '', unit = 'ms'] = match;
    total += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
    consumed += whole.length;
  }
  if (consumed === 0 || consumed !== trimmed.length) return undefined;
  return Math.round(total);
}

/** The largest unit first, as in "596h31m23s647ms"; "0s" for zero. */
export function formatDuration(ms: number): string {
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['h', UNIT_MS.h],
    ['m', UNIT_MS.m],
    ['s', UNIT_MS.s],
    ['ms', UNIT_MS.ms],
  ] as const) {
    const amount = Math.floor(rest / size);
    if (amount > 0) parts.push(`${amount}${unit}`);
    rest -= amount * size;
  }
  return parts.length > 0 ? parts.join('') : '0s';
}
