import type { Matcher } from './types.js';
import { scalarText } from './text.js';
import { hasDomainSuffix } from './domain-suffix.js';

/** `domain_list`: a file of domains, each matching as a suffix; printed by its file name. */
export function domainListMatcher(list: {
  readonly file: string;
  readonly entries: readonly string[];
}): Matcher<string> {
  const set = new Set(list.entries);
  return {
    text: `domain_list: ${scalarText(list.file)}`,
    matches: (name) => hasDomainSuffix(set, name),
  };
}
