import type { Matcher } from './types.js';
import { listText } from './text.js';

/** `domain_keyword`: a substring anywhere in the name. */
export function keywordDomainMatcher(keywords: readonly string[]): Matcher<string> {
  return {
    text: listText('domain_keyword', keywords),
    matches: (name) => keywords.some((keyword) => name.includes(keyword)),
  };
}
