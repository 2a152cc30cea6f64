// MS-NLMP §2.2.1 (NEGOTIATE_MESSAGE, CHALLENGE_MESSAGE, AUTHENTICATE_MESSAGE), §2.2.2.1
// (AV_PAIR), §2.2.2.5 (NegotiateFlags): the three NTLM messages, as junction writes and reads
// them. Every read from a CHALLENGE_MESSAGE is checked against its length: it comes from the
// network, and a malformed one is refused, never trusted.

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');

/** §2.2.2.5, the flags junction uses. */
export const FLAGS = {
  UNICODE: 0x00000001,
  OEM: 0x00000002,
  REQUEST_TARGET: 0x00000004,
  NTLM: 0x00000200,
  ALWAYS_SIGN: 0x00008000,
  EXTENDED_SESSIONSECURITY: 0x00080000,
  TARGET_INFO: 0x00800000,
  N128: 0x20000000,
  KEY_EXCH: 0x40000000,
  N56: 0x80000000,
} as const;

/**
 * What junction asks for, as cntlm and curl do: NTLM with extended session security (NTLMv2
 * responses follow from the client's own setting, §3.1.1.1), Unicode or OEM strings, and the
 * server's target info. No KEY_EXCH: HTTP authentication neither signs nor seals, so no session
 * key is exchanged (and the RC4 it would need is refused by Node's OpenSSL 3 too).
 */
export const NEGOTIATE_FLAGS =
  FLAGS.UNICODE |
  FLAGS.OEM |
  FLAGS.REQUEST_TARGET |
  FLAGS.NTLM |
  FLAGS.ALWAYS_SIGN |
  FLAGS.EXTENDED_SESSIONSECURITY |
  FLAGS.N128 |
  FLAGS.N56;

/** §2.2.2.1 AvId values junction reads. */
export const AV = { EOL: 0, TIMESTAMP: 7 } as const;

/** A CHALLENGE_MESSAGE larger than this is refused (real ones are a few hundred bytes). */
export const MAX_CHALLENGE_BYTES = 8192;

const NEGOTIATE_HEADER = 32;
const CHALLENGE_MIN = 32;
const CHALLENGE_WITH_TARGET_INFO = 48;
const AUTHENTICATE_HEADER = 64;

/** §2.2.1.1: no domain or workstation (both optional), no version. */
export function negotiateMessage(): Buffer {
  const message = Buffer.alloc(NEGOTIATE_HEADER);
  SIGNATURE.copy(message);
  message.writeUInt32LE(1, 8);
  message.writeUInt32LE(NEGOTIATE_FLAGS >>> 0, 12);
  // Empty DomainNameFields and WorkstationFields point at the end of the message.
  writeFields(message, 16, 0, NEGOTIATE_HEADER);
  writeFields(message, 24, 0, NEGOTIATE_HEADER);
  return message;
}

export interface ChallengeMessage {
  readonly flags: number;
  readonly serverChallenge: Buffer;
  /** The AV pairs as received, to be echoed in the NTLMv2 response; empty when absent. */
  readonly targetInfo: Buffer;
  /** MsvAvTimestamp, a FILETIME, when the server sent one. */
  readonly timestamp: bigint | undefined;
}

/** §2.2.1.2; undefined for anything that is not a well-formed CHALLENGE_MESSAGE. */
export function parseChallengeMessage(message: Buffer): ChallengeMessage | undefined {
  if (message.length < CHALLENGE_MIN || message.length > MAX_CHALLENGE_BYTES) return undefined;
  if (!message.subarray(0, 8).equals(SIGNATURE) || message.readUInt32LE(8) !== 2) return undefined;
  const flags = message.readUInt32LE(20);
  // TargetNameFields (at 12) are not read: the name is not needed, and some servers fill its
  // offset with garbage (squid's ntlm_fake_auth does).
  const serverChallenge = Buffer.from(message.subarray(24, 32));
  let targetInfo = Buffer.alloc(0);
  // The flag says whether TargetInfoFields are there: servers without it end the header at the
  // reserved bytes and may start their payload where those fields would be.
  if (flags & FLAGS.TARGET_INFO) {
    if (message.length < CHALLENGE_WITH_TARGET_INFO) return undefined;
    const info = readFields(message, 40);
    if (info === undefined) return undefined;
    targetInfo = Buffer.from(info);
  }
  const pairs = readAvPairs(targetInfo);
  if (pairs === undefined) return undefined;
  const stamp = pairs.get(AV.TIMESTAMP);
  if (stamp !== undefined && stamp.length !== 8) return undefined;
  return { flags, serverChallenge, targetInfo, timestamp: stamp?.readBigUInt64LE(0) };
}

/** The bytes a Len/MaxLen/Offset triple at `at` points to, if they lie within the message. */
function readFields(message: Buffer, at: number): Buffer | undefined {
  const length = message.readUInt16LE(at);
  const offset = message.readUInt32LE(at + 4);
  if (length === 0) return Buffer.alloc(0);
  if (offset > message.length || length > message.length - offset) return undefined;
  return message.subarray(offset, offset + length);
}

/**
 * §2.2.2.1: AvId, AvLen, value, up to MsvAvEOL. Undefined when a pair runs past the end or
 * there is no MsvAvEOL (an empty list is allowed: the server then sent no target info).
 */
function readAvPairs(info: Buffer): Map<number, Buffer> | undefined {
  const pairs = new Map<number, Buffer>();
  if (info.length === 0) return pairs;
  for (let at = 0; at + 4 <= info.length;) {
    const id = info.readUInt16LE(at);
    const length = info.readUInt16LE(at + 2);
    if (id === AV.EOL) return pairs;
    if (length > info.length - at - 4) return undefined;
    if (!pairs.has(id)) pairs.set(id, info.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return undefined;
}

export interface AuthenticateFields {
  readonly flags: number;
  readonly lmResponse: Buffer;
  readonly ntResponse: Buffer;
  readonly domain: string;
  readonly user: string;
  readonly workstation: string;
}

/**
 * §2.2.1.3, without version or MIC; strings in UTF-16LE when Unicode was negotiated, else OEM.
 * Undefined when a field is too long for its 16-bit length.
 */
export function authenticateMessage(fields: AuthenticateFields): Buffer | undefined {
  const text = (value: string): Buffer =>
    Buffer.from(value, fields.flags & FLAGS.UNICODE ? 'utf16le' : 'latin1');
  const payload = [
    fields.lmResponse,
    fields.ntResponse,
    text(fields.domain),
    text(fields.user),
    text(fields.workstation),
    Buffer.alloc(0), // EncryptedRandomSessionKey: no KEY_EXCH
  ];
  if (payload.some((part) => part.length > 0xffff)) return undefined;
  const header = Buffer.alloc(AUTHENTICATE_HEADER);
  SIGNATURE.copy(header);
  header.writeUInt32LE(3, 8);
  let offset = AUTHENTICATE_HEADER;
  payload.forEach((part, i) => {
    writeFields(header, 12 + i * 8, part.length, offset);
    offset += part.length;
  });
  header.writeUInt32LE(fields.flags >>> 0, 60);
  return Buffer.concat([header, ...payload]);
}

function writeFields(message: Buffer, at: number, length: number, offset: number): void {
  message.writeUInt16LE(length, at);
  message.writeUInt16LE(length, at + 2);
  message.writeUInt32LE(offset, at + 4);
}
