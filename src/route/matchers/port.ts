import type { Matcher } from './types.js';
import { listText } from './text.js';

export type PortItem = number | { readonly from: number; readonly to: number };

/** `port`: single ports and inclusive ranges such as 8000-8999. */
export function portMatcher(items: readonly PortItem[]): Matcher<number> {
  const singles = new Set<number>();
  const ranges: { from: number; to: number }[] = [];
  for (const item of items) {
    if (typeof item === 'number') singles.add(item);
    else ranges.push({ from: item.from, to: item.to });
  }
  return {
    text: listText(
      'port',
      items.map((item) => (typeof item === 'number' ? item : `${item.from}-${item.to}`)),
    ),
    matches: (port) =>
      singles.has(port) || ranges.some((range) => port >= range.from && port <= range.to),
  };
}
