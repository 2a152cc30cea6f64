import type { Matcher } from './types.js';
import { listText } from './text.js';

/** `user`: an authenticated user with one of these names; an anonymous session never matches. */
export function userMatcher(names: readonly string[]): Matcher<string | undefined> {
  const set = new Set(names);
  return {
    text: listText('user', names),
    matches: (user) => user !== undefined && set.has(user),
  };
}
