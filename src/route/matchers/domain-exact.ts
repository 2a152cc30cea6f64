import type { Matcher } from './types.js';
import { listText } from './text.js';

/** `domain`: the name itself only, not its subdomains. */
export function exactDomainMatcher(names: readonly string[]): Matcher<string> {
  const set = new Set(names);
  return { text: listText('domain', names), matches: (name) => set.has(name) };
}
