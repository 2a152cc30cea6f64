import type { SessionInfo } from '../session-info.js';

/** Resolves a name to its addresses; used only by rules that say `resolve: true`. */
export type Resolver = (name: string, signal?: AbortSignal) => Promise<readonly string[]>;

/** The part of a session a rule can look at. */
export type RouteInput = Pick<SessionInfo, 'inbound' | 'source' | 'user' | 'target'>;

export interface Rule {
  /** 0-based position in `rules:`, printed as `rules[3]`. */
  readonly index: number;
  /** Rebuilt from the config, for `junction route` and the access log. */
  readonly text: string;
  readonly outbound: string;
  /** True when a domain target must be resolved before this rule's ip_cidr can be tested. */
  readonly resolve: boolean;
  /**
   * `input`'s domain name is normalised (lower case, no trailing dot), as the router gives it;
   * `addresses` are the target's resolved addresses, given only for `resolve` rules.
   */
  matches(input: RouteInput, addresses: readonly string[] | undefined): boolean;
}

export interface RouteDecision {
  /** undefined: no rule matched, so the default `direct` applies. */
  readonly rule: Rule | undefined;
  readonly outbound: string;
}

export interface Router {
  readonly rules: readonly Rule[];
  /**
   * First match wins. Does no I/O unless a matching candidate rule says `resolve: true`; only
   * then is `abort.signal` read (an AbortController will do; a session's is made on first read).
   */
  decide(input: RouteInput, abort?: { readonly signal: AbortSignal }): Promise<RouteDecision>;
}
