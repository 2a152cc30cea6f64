// RFC 7616: HTTP Digest Access Authentication. §3.4 the response (MD5, SHA-256, SHA-512-256 and
// their -sess variants, qop=auth), §3.4.4 userhash, §3.5 stale=true, §3.4.6 and RFC 2069 when the
// challenge has no qop. auth-int is not offered: a CONNECT has no body worth protecting, and a
// proxy that insists on it only is reported as offering a scheme junction cannot answer.
import { createHash, randomBytes } from 'node:crypto';
import { quoted, type Challenge } from './challenge.js';
import type { AuthExchange, AuthRequest, AuthScheme, ProxyCredentials } from './types.js';

/** §3.2 algorithm names (lower-cased) to Node hash names, weakest first. */
const HASHES: ReadonlyMap<string, string> = new Map([
  ['md5', 'md5'],
  ['sha-256', 'sha256'],
  ['sha-512-256', 'sha512-256'],
]);
const STRENGTH = [...HASHES.keys()];

interface Algorithm {
  /** As the challenge spelled it, echoed back. */
  readonly name: string;
  readonly hash: string;
  readonly session: boolean;
}

function algorithmOf(challenge: Challenge): Algorithm | undefined {
  // §3.3: absent means MD5.
  const name = challenge.params.get('algorithm') ?? 'MD5';
  const lower = name.toLowerCase();
  const session = lower.endsWith('-sess');
  const hash = HASHES.get(session ? lower.slice(0, -'-sess'.length) : lower);
  return hash === undefined ? undefined : { name, hash, session };
}

/** 'auth' when offered, '' for a challenge without qop (RFC 2069); undefined: auth-int only. */
function qopOf(challenge: Challenge): 'auth' | '' | undefined {
  const qop = challenge.params.get('qop');
  if (qop === undefined) return '';
  const offered = qop.split(',').map((q) => q.trim().toLowerCase());
  return offered.includes('auth') ? 'auth' : undefined;
}

export interface DigestInput {
  readonly challenge: Challenge;
  readonly request: AuthRequest;
  readonly credentials: ProxyCredentials;
  /** Nonce count, 1 for the first use of this nonce (§3.4: 8 hex digits). */
  readonly nc: number;
  readonly cnonce: string;
}

/** The Proxy-Authorization for one challenge; undefined when the challenge cannot be answered. */
export function digestAuthorization(input: DigestInput): string | undefined {
  const { challenge, request, credentials, cnonce } = input;
  const algorithm = algorithmOf(challenge);
  const qop = qopOf(challenge);
  const realm = challenge.params.get('realm');
  const nonce = challenge.params.get('nonce');
  if (algorithm === undefined || qop === undefined || realm === undefined || nonce === undefined) {
    return undefined;
  }
  const h = (text: string): string => createHash(algorithm.hash).update(text, 'utf8').digest('hex');
  const nc = input.nc.toString(16).padStart(8, '0');
  let ha1 = h(`${credentials.username}:${realm}:${credentials.password}`);
  if (algorithm.session) ha1 = h(`${ha1}:${nonce}:${cnonce}`);
  const ha2 = h(`${request.method}:${request.uri}`);
  const response =
    qop === '' ? h(`${ha1}:${nonce}:${ha2}`) : h(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`);
  const userhash = challenge.params.get('userhash')?.toLowerCase() === 'true';
  const username = userhash ? h(`${credentials.username}:${realm}`) : credentials.username;
  const opaque = challenge.params.get('opaque');
  const params = [
    usernameParam(username),
    `realm=${quoted(realm)}`,
    `uri=${quoted(request.uri)}`,
    `algorithm=${algorithm.name}`,
    `nonce=${quoted(nonce)}`,
    ...(qop === '' ? [] : [`nc=${nc}`, `cnonce=${quoted(cnonce)}`, `qop=${qop}`]),
    `response=${quoted(response)}`,
    ...(opaque === undefined ? [] : [`opaque=${quoted(opaque)}`]),
    ...(userhash ? ['userhash=true'] : []),
  ];
  return `Digest ${params.join(', ')}`;
}

/**
 * §3.4.4: a user name a quoted-string cannot carry (beyond visible ASCII) goes as `username*`
 * in the RFC 8187 encoding.
 */
function usernameParam(username: string): string {
  if (/^[\x20-\x7e]*$/.test(username)) return `username=${quoted(username)}`;
  const encoded = encodeURIComponent(username).replace(
    /['()*!]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `username*=UTF-8''${encoded}`;
}

function newCnonce(): string {
  return randomBytes(16).toString('hex');
}

export const digest: AuthScheme<AuthExchange> = {
  name: 'digest',
  title: 'Digest',
  connectionBound: false,
  strength(challenge) {
    const algorithm = algorithmOf(challenge);
    if (algorithm === undefined || qopOf(challenge) === undefined) return undefined;
    if (!challenge.params.has('realm') || !challenge.params.has('nonce')) return undefined;
    return STRENGTH.indexOf(algorithm.name.toLowerCase().replace(/-sess$/, ''));
  },
  reuse(credentials, challenge, request, count) {
    // §3.4.2: -sess ties HA1 to the first cnonce; a challenge without qop has no nonce count.
    const algorithm = algorithmOf(challenge);
    if (algorithm === undefined || algorithm.session || qopOf(challenge) !== 'auth') {
      return undefined;
    }
    return digestAuthorization({ challenge, request, credentials, nc: count, cnonce: newCnonce() });
  },
  start(credentials: ProxyCredentials): AuthExchange {
    let answered = false;
    let staleAnswered = false;
    return {
      answer(challenge, request) {
        // §3.5: stale=true means the nonce expired, not that the credentials are wrong: answer
        // the fresh nonce once without counting it as a failure.
        const stale = challenge.params.get('stale')?.toLowerCase() === 'true';
        if (answered && !(stale && !staleAnswered)) return undefined;
        if (answered) staleAnswered = true;
        answered = true;
        return digestAuthorization({ challenge, request, credentials, nc: 1, cnonce: newCnonce() });
      },
    };
  },
};
