import type { Matcher } from './types.js';
import { listText } from './text.js';

/** `domain_regex`: printed by each pattern's source, as written in the config. */
export function regexDomainMatcher(patterns: readonly RegExp[]): Matcher<string> {
  const sources = patterns.map((pattern) => pattern.source);
  return {
    text: listText('domain_regex', sources),
    // The schema compiles with flag i and never g, so test() keeps no lastIndex between calls.
    matches: (name) => patterns.some((pattern) => pattern.test(name)),
  };
}
