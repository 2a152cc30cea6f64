import { domainTableOf, SUFFIX } from '../domain-table.js';
import type { Matcher } from './types.js';
import { listText } from './text.js';

/** `domain_suffix`: example.com matches example.com and x.example.com, never badexample.com. */
export function suffixDomainMatcher(suffixes: readonly string[]): Matcher<string> {
  const table = domainTableOf(suffixes, SUFFIX);
  return {
    text: listText('domain_suffix', suffixes),
    matches: (name) => table.matches(name),
  };
}
