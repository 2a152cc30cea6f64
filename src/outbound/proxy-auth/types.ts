import type { Challenge } from './challenge.js';
import type { KerberosBinding } from './kerberos.js';

/** Every scheme junction knows of, strongest first (the default order of preference). */
export const SCHEME_NAMES = ['negotiate', 'ntlm', 'digest', 'basic'] as const;
export type SchemeName = (typeof SCHEME_NAMES)[number];

export interface ProxyCredentials {
  readonly username: string;
  readonly password: string;
  /** NTLM: the account's domain, when the user name does not carry it (`DOMAIN\user`). */
  readonly domain?: string | undefined;
  /** NTLM: the workstation name sent with the credentials; none when absent. */
  readonly workstation?: string | undefined;
  /** Negotiate: the loaded GSS-API binding and the proxy's service principal (`HTTP@host`). */
  readonly kerberos?: { readonly binding: KerberosBinding; readonly spn: string } | undefined;
}

/** The request being authorized: Digest signs its method and URI. */
export interface AuthRequest {
  readonly method: string;
  /** The request-target: `host:port` for CONNECT (RFC 9110 §7.1, authority-form). */
  readonly uri: string;
}

/**
 * One scheme's conversation with a proxy for one request. Each 407 carrying this scheme's
 * challenge is handed to `answer`; a single-round scheme (Basic, Digest) answers once (Digest
 * again on `stale=true`), a multi-round one (NTLM, Negotiate) answers each step of its handshake.
 */
export interface AuthExchange {
  /** The Proxy-Authorization for the next attempt; undefined once the proxy has refused it. */
  answer(challenge: Challenge, request: AuthRequest): string | undefined;
}

/**
 * An exchange whose answers come from a library that works asynchronously (Negotiate's GSS-API
 * calls). It rejects with NegotiateUnavailable when it cannot begin at all.
 */
export interface AsyncAuthExchange {
  answer(challenge: Challenge, request: AuthRequest): Promise<string | undefined>;
}

/** `Exchange` narrows what `start` gives: the in-process schemes answer at once. */
export interface AuthScheme<
  Exchange extends AuthExchange | AsyncAuthExchange = AuthExchange | AsyncAuthExchange,
> {
  readonly name: SchemeName;
  /** As errors and logs name it: "Digest". */
  readonly title: string;
  /**
   * True for schemes that authenticate the connection rather than the request (NTLM,
   * Negotiate): every round trip of the handshake must stay on one connection.
   */
  readonly connectionBound: boolean;
  /**
   * True for schemes that take the process's Kerberos credentials (Negotiate), not the URL's:
   * usable only where the binding is loaded, and without a user in the URL.
   */
  readonly kerberos?: boolean;
  /**
   * How well this scheme can answer `challenge` (higher is stronger, for a proxy offering the
   * scheme with several algorithms); undefined when it cannot answer it at all.
   */
  strength(challenge: Challenge): number | undefined;
  start(credentials: ProxyCredentials): Exchange;
  /**
   * Schemes whose challenge stays good for later requests (Digest): the answer to `challenge`
   * for its `count`-th use; undefined when it cannot be reused.
   */
  reuse?(
    credentials: ProxyCredentials,
    challenge: Challenge,
    request: AuthRequest,
    count: number,
  ): string | undefined;
}
