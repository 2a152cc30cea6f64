// RFC 9110 §11.6.1-§11.6.2 and §11.7.1: a 407 may offer several schemes; the client picks the
// one it prefers among those it can answer.
import { basic } from './basic.js';
import type { Challenge } from './challenge.js';
import { digest } from './digest.js';
import type { KerberosTarget } from './kerberos.js';
import { negotiate } from './negotiate.js';
import { ntlm } from './ntlm.js';
import { SCHEME_NAMES, type AuthScheme, type SchemeName } from './types.js';

/** The schemes junction implements. */
export const AUTH_SCHEMES = {
  negotiate,
  ntlm,
  digest,
  basic,
} as const satisfies Readonly<Record<SchemeName, AuthScheme>>;

export interface SchemePolicy {
  /** The schemes junction may answer with, in order of preference (default SCHEME_NAMES). */
  readonly schemes: readonly SchemeName[];
  /** Basic sent with the first request, before any challenge. */
  readonly preemptiveBasic: boolean;
  /** NTLM's domain and workstation, completing the credentials of the URL's user. */
  readonly domain?: string | undefined;
  readonly workstation?: string | undefined;
  /** Negotiate: absent, or without a loaded binding, when the outbound cannot answer it. */
  readonly kerberos?: KerberosTarget | undefined;
}

export const DEFAULT_POLICY: SchemePolicy = { schemes: SCHEME_NAMES, preemptiveBasic: false };

export type Choice =
  | { readonly scheme: AuthScheme; readonly challenge: Challenge }
  | {
      readonly scheme: undefined;
      readonly offered: readonly string[];
      readonly usable: readonly string[];
    };

/**
 * The preferred scheme that both the proxy offers and junction can answer, with the challenge
 * to answer (the strongest one, when the proxy offers the scheme more than once, as Digest with
 * SHA-256 and MD5). `exclude` takes out schemes already refused on this request.
 */
export function chooseScheme(
  challenges: readonly Challenge[],
  policy: SchemePolicy,
  exclude: ReadonlySet<SchemeName> = new Set(),
): Choice {
  for (const name of policy.schemes) {
    const scheme = schemeOf(name, policy);
    if (scheme === undefined || exclude.has(name)) continue;
    const challenge = challengeFor(challenges, scheme);
    if (challenge) return { scheme, challenge };
  }
  return {
    scheme: undefined,
    offered: [
      ...new Set(
        challenges.map((c) => {
          const name = c.scheme.toLowerCase() as SchemeName;
          // Offered and allowed, yet unanswerable: an algorithm or qop junction does not do.
          const known =
            policy.schemes.includes(name) &&
            schemeOf(name, policy) !== undefined &&
            !exclude.has(name);
          return known ? `${c.scheme} (with parameters junction cannot answer)` : c.scheme;
        }),
      ),
    ],
    usable: usableSchemes(policy).map((s) => s.title),
  };
}

export function usableSchemes(policy: SchemePolicy): AuthScheme[] {
  return policy.schemes.flatMap((name) => schemeOf(name, policy) ?? []);
}

/** The scheme, unless it needs the Kerberos binding and this outbound has none. */
function schemeOf(name: SchemeName, policy: SchemePolicy): AuthScheme | undefined {
  const scheme: AuthScheme = AUTH_SCHEMES[name];
  if (scheme.kerberos && policy.kerberos?.support.binding === undefined) return undefined;
  return scheme;
}

/** The challenge of `scheme` in a later 407 of the same exchange (its next round, or stale). */
export function challengeFor(
  challenges: readonly Challenge[],
  scheme: AuthScheme,
): Challenge | undefined {
  const own = challenges.filter((c) => c.scheme.toLowerCase() === scheme.name);
  let best: { challenge: Challenge; strength: number } | undefined;
  for (const challenge of own) {
    const strength = scheme.strength(challenge);
    if (strength !== undefined && (best === undefined || strength > best.strength)) {
      best = { challenge, strength };
    }
  }
  return best?.challenge;
}
