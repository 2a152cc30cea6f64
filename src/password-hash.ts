import { randomBytes, scrypt } from 'node:crypto';

/** What `junction hash-password` uses: scrypt's interactive-login parameters (RFC 7914 §2). */
const DEFAULT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  /** The derived key to compare with; a derivation is as long as this. */
  readonly key: Buffer;
}

/** Derives the key of `password` with the parameters and salt of `params`. */
export function scryptKey(password: string, params: ScryptParams): Promise<Buffer> {
  const { N, r, p, salt, key } = params;
  return new Promise((resolve, reject) => {
    scrypt(password, salt, key.length, { N, r, p, maxmem: 256 * N * r }, (err, derived) => {
      if (err) reject(err);
      else resolve(derived);
    });
  });
}

/** `scrypt$N$r$p$salt$hash` with base64 salt and hash. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const { N, r, p } = DEFAULT;
  const key = await scryptKey(password, { N, r, p, salt, key: Buffer.alloc(DEFAULT.keylen) });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export function parseHash(text: string): ScryptParams | undefined {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const key = Buffer.from(parts[5] ?? '', 'base64');
  if (!N || !r || !p || (N & (N - 1)) !== 0 || salt.length < 8 || key.length < 16) return undefined;
  return { N, r, p, salt, key };
}

/** Parameters like `like`'s with a random salt and key: a hash no password matches. */
export function decoyHash(like: ScryptParams): ScryptParams {
  return { ...like, salt: randomBytes(like.salt.length), key: randomBytes(like.key.length) };
}
