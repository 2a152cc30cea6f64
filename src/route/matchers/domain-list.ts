import type { DomainTable } from '../domain-table.js';
import type { Matcher } from './types.js';
import { scalarText } from './text.js';

/** `domain_list`: a file of exact names and suffixes, loaded whole; printed by its file name. */
export function domainListMatcher(list: {
  readonly file: string;
  readonly domains: DomainTable;
}): Matcher<string> {
  const { domains } = list;
  return {
    text: `domain_list: ${scalarText(list.file)}`,
    matches: (name) => domains.matches(name),
  };
}
