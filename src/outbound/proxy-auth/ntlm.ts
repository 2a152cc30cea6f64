// MS-NTHT §2.2 and §3.1.5.1 (NTLM over HTTP: `NTLM <base64>` in Proxy-Authenticate and
// Proxy-Authorization), MS-NLMP §3.1.5.1 (the client's side of connection-oriented NTLM): the
// NEGOTIATE → CHALLENGE → AUTHENTICATE exchange on one connection, answered with NTLMv2 only.
import { randomBytes } from 'node:crypto';
import type { Challenge } from './challenge.js';
import { filetime, lmv2Response, ntlmv2Response, ntowfv2, type V2Response } from './ntlm-crypto.js';
import {
  authenticateMessage,
  FLAGS,
  MAX_CHALLENGE_BYTES,
  NEGOTIATE_FLAGS,
  negotiateMessage,
  parseChallengeMessage,
  type ChallengeMessage,
} from './ntlm-messages.js';
import type { AuthExchange, AuthScheme, ProxyCredentials } from './types.js';

/** Who NTLM says the client is. */
export interface NtlmAccount {
  readonly user: string;
  readonly domain: string;
  readonly workstation: string;
  readonly password: string;
}

/**
 * The account of `credentials`: `DOMAIN\user` splits at the first backslash; a UPN
 * (`user@domain`) is sent whole with an empty domain, as Windows does, and the directory resolves
 * it; otherwise the configured domain, if any. No workstation unless configured: the proxy needs
 * none, and the machine's name is not ours to give away.
 */
export function ntlmAccount(credentials: ProxyCredentials): NtlmAccount {
  const { username, password } = credentials;
  const slash = username.indexOf('\\');
  const workstation = credentials.workstation ?? '';
  if (slash >= 0) {
    return {
      user: username.slice(slash + 1),
      domain: username.slice(0, slash),
      workstation,
      password,
    };
  }
  const domain = username.includes('@') ? '' : (credentials.domain ?? '');
  return { user: username, domain, workstation, password };
}

export interface AuthenticateOptions {
  /** 8 random bytes by default. */
  readonly clientChallenge?: Buffer;
  /** The clock used when the server sends no MsvAvTimestamp. */
  readonly now?: () => number;
}

/**
 * The AUTHENTICATE_MESSAGE answering `challenge` (MS-NLMP §3.1.5.1.2), with the NTLMv2 response
 * and its session base key; undefined when a field does not fit the message.
 */
export function authenticate(
  account: NtlmAccount,
  challenge: ChallengeMessage,
  options: AuthenticateOptions = {},
): { message: Buffer; response: V2Response } | undefined {
  const clientChallenge = options.clientChallenge ?? randomBytes(8);
  const responseKey = ntowfv2(account.password, account.user, account.domain);
  const response = ntlmv2Response({
    responseKey,
    serverChallenge: challenge.serverChallenge,
    clientChallenge,
    time: challenge.timestamp ?? filetime((options.now ?? Date.now)()),
    targetInfo: challenge.targetInfo,
  });
  // §3.1.5.1.2: with an MsvAvTimestamp the client sends Z(24) rather than an LMv2 response.
  const lmResponse =
    challenge.timestamp === undefined
      ? lmv2Response(responseKey, challenge.serverChallenge, clientChallenge)
      : Buffer.alloc(24);
  const message = authenticateMessage({
    flags: negotiatedFlags(challenge.flags),
    lmResponse,
    ntResponse: response.ntResponse,
    domain: account.domain,
    user: account.user,
    workstation: account.workstation,
  });
  return message && { message, response };
}

/** What both sides asked for, with one character set: Unicode when the server offers it. */
function negotiatedFlags(offered: number): number {
  const common = (offered & NEGOTIATE_FLAGS & ~(FLAGS.UNICODE | FLAGS.OEM)) | FLAGS.NTLM;
  return (common | (offered & FLAGS.UNICODE ? FLAGS.UNICODE : FLAGS.OEM)) >>> 0;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The CHALLENGE_MESSAGE of a `NTLM <base64>` challenge; undefined when it is not one. */
export function challengeMessageOf(challenge: Challenge): ChallengeMessage | undefined {
  const token = challenge.token68;
  if (token === undefined || token.length > Math.ceil(MAX_CHALLENGE_BYTES / 3) * 4) {
    return undefined;
  }
  if (!BASE64.test(token)) return undefined;
  return parseChallengeMessage(Buffer.from(token, 'base64'));
}

const header = (message: Buffer): string => `NTLM ${message.toString('base64')}`;

export const ntlm: AuthScheme<AuthExchange> = {
  name: 'ntlm',
  title: 'NTLM',
  connectionBound: true,
  // `NTLM` alone starts the exchange, `NTLM <base64>` carries the CHALLENGE_MESSAGE.
  strength: (challenge) => (challenge.params.size === 0 ? 0 : undefined),
  start(credentials): AuthExchange {
    const account = ntlmAccount(credentials);
    let step: 'negotiate' | 'authenticate' | 'done' = 'negotiate';
    return {
      answer(challenge) {
        if (step === 'negotiate') {
          // A CHALLENGE_MESSAGE nobody asked for is not answered.
          if (challenge.token68 !== undefined) return undefined;
          step = 'authenticate';
          return header(negotiateMessage());
        }
        if (step === 'done') {
          // A challenge after the AUTHENTICATE_MESSAGE: the proxy refused the credentials.
          return undefined;
        }
        step = 'done';
        const message = challengeMessageOf(challenge);
        const answer = message && authenticate(account, message);
        return answer && header(answer.message);
      },
    };
  },
};
