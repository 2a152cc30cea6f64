import type { Matcher } from './types.js';
import { listText } from './text.js';

/** `inbound`: the name of the inbound the session arrived on. */
export function inboundMatcher(names: readonly string[]): Matcher<string> {
  const set = new Set(names);
  return { text: listText('inbound', names), matches: (inbound) => set.has(inbound) };
}
