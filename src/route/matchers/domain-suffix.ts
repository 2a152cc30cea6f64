import type { Matcher } from './types.js';
import { listText } from './text.js';

/**
 * True when `name` or one of its parent domains is in `suffixes`. Walking the name's labels costs
 * one Set lookup per label, so block lists of 100k entries cost what a list of ten does.
 */
export function hasDomainSuffix(suffixes: ReadonlySet<string>, name: string): boolean {
  let candidate = name;
  for (;;) {
    if (suffixes.has(candidate)) return true;
    const dot = candidate.indexOf('.');
    if (dot < 0) return false;
    candidate = candidate.slice(dot + 1);
  }
}

/** `domain_suffix`: example.com matches example.com and x.example.com, never badexample.com. */
export function suffixDomainMatcher(suffixes: readonly string[]): Matcher<string> {
  const set = new Set(suffixes);
  return {
    text: listText('domain_suffix', suffixes),
    matches: (name) => hasDomainSuffix(set, name),
  };
}
