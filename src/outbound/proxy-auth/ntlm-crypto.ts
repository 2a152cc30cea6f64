// MS-NLMP §3.3.2: NTLM v2 authentication, the client's computations. NTLMv1 and LM are not
// implemented: junction never sends them.
import { createHmac } from 'node:crypto';
import { md4 } from './md4.js';

const hmacMd5 = (key: Buffer, ...data: Buffer[]): Buffer => {
  const hmac = createHmac('md5', key);
  for (const part of data) hmac.update(part);
  return hmac.digest();
};

const unicode = (text: string): Buffer => Buffer.from(text, 'utf16le');

/**
 * NTOWFv2 (also LMOWFv2, the same function in v2): HMAC_MD5(MD4(UNICODE(password)),
 * UNICODE(Uppercase(user) + domain)). The domain keeps its case.
 */
export function ntowfv2(password: string, user: string, domain: string): Buffer {
  return hmacMd5(md4(unicode(password)), unicode(user.toUpperCase() + domain));
}

export interface V2Input {
  /** NTOWFv2 of the account. */
  readonly responseKey: Buffer;
  /** The CHALLENGE_MESSAGE's 8 bytes. */
  readonly serverChallenge: Buffer;
  /** 8 random bytes of the client. */
  readonly clientChallenge: Buffer;
  /** FILETIME: 100 ns units since 1601-01-01 UTC. */
  readonly time: bigint;
  /** The AV pairs of the CHALLENGE_MESSAGE's TargetInfo, as received. */
  readonly targetInfo: Buffer;
}

export interface V2Response {
  /** NtChallengeResponse: NTProofStr followed by the blob. */
  readonly ntResponse: Buffer;
  /** HMAC_MD5(ResponseKeyNT, NTProofStr). */
  readonly sessionBaseKey: Buffer;
}

/**
 * NtChallengeResponse: NTProofStr = HMAC_MD5(ResponseKeyNT, ServerChallenge + temp), where temp
 * (NTLMv2_CLIENT_CHALLENGE, §2.2.2.7) is RespType 1, HiRespType 1, Z(6), Time, ClientChallenge,
 * Z(4), the server's AV pairs, Z(4).
 */
export function ntlmv2Response(input: V2Input): V2Response {
  const header = Buffer.alloc(16);
  header[0] = 1;
  header[1] = 1;
  header.writeBigUInt64LE(input.time, 8);
  const temp = Buffer.concat([
    header,
    input.clientChallenge,
    Buffer.alloc(4),
    input.targetInfo,
    Buffer.alloc(4),
  ]);
  const ntProofStr = hmacMd5(input.responseKey, input.serverChallenge, temp);
  return {
    ntResponse: Buffer.concat([ntProofStr, temp]),
    sessionBaseKey: hmacMd5(input.responseKey, ntProofStr),
  };
}

/** LmChallengeResponse (LMv2): HMAC_MD5(ResponseKeyLM, ServerChallenge + ClientChallenge) + ClientChallenge. */
export function lmv2Response(
  responseKey: Buffer,
  serverChallenge: Buffer,
  clientChallenge: Buffer,
): Buffer {
  return Buffer.concat([hmacMd5(responseKey, serverChallenge, clientChallenge), clientChallenge]);
}

/** 1601-01-01 to 1970-01-01 in milliseconds. */
const FILETIME_EPOCH_MS = 11_644_473_600_000n;

/** A JavaScript time (ms since 1970) as a FILETIME. */
export function filetime(ms: number): bigint {
  return (BigInt(Math.floor(ms)) + FILETIME_EPOCH_MS) * 10_000n;
}
