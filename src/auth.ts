import { scrypt, randomBytes, timingSafeEqual, createHash, type ScryptOptions } from 'node:crypto';
import type { UserConfig } from './config/schema.js';

/** Checks a username and password; resolves to the user name on success. */
export interface Authenticator {
  verify(username: string, password: string): Promise<boolean>;
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

function scryptAsync(
  password: string,
  salt: Buffer,
  keylen: number,
  options: ScryptOptions,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keylen, options, (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

/** `scrypt$N$r$p$salt$hash` with base64 salt and hash. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, SCRYPT.keylen, {
    N: SCRYPT.N,
    r: SCRYPT.r,
    p: SCRYPT.p,
  });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

interface ParsedHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

export function parseHash(text: string): ParsedHash | undefined {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const key = Buffer.from(parts[5] ?? '', 'base64');
  if (!N || !r || !p || (N & (N - 1)) !== 0 || salt.length < 8 || key.length < 16) return undefined;
  return { N, r, p, salt, key };
}

type Credential = { kind: 'plain'; digest: Buffer } | { kind: 'scrypt'; hash: ParsedHash };

/** Plain passwords are compared as SHA-256 digests so the comparison is constant-time and length-blind. */
const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

export function createAuthenticator(users: readonly UserConfig[]): Authenticator {
  const credentials = new Map<string, Credential>();
  for (const user of users) {
    if ('password' in user) {
      credentials.set(user.username, { kind: 'plain', digest: digest(user.password) });
    } else {
      const hash = parseHash(user.password_hash);
      if (!hash)
        throw new Error(`user "${user.username}": password_hash is not a valid scrypt hash`);
      credentials.set(user.username, { kind: 'scrypt', hash });
    }
  }
  // An unknown user costs the same digest and comparison as a known one.
  const decoy: Credential = { kind: 'plain', digest: digest(randomBytes(16).toString('hex')) };
  return {
    async verify(username, password) {
      const known = credentials.get(username);
      const credential = known ?? decoy;
      let ok: boolean;
      if (credential.kind === 'plain') {
        ok = timingSafeEqual(digest(password), credential.digest);
      } else {
        const { N, r, p, salt, key } = credential.hash;
        const derived = await scryptAsync(password, salt, key.length, {
          N,
          r,
          p,
          maxmem: 256 * N * r,
        });
        ok = timingSafeEqual(derived, key);
      }
      return ok && known !== undefined;
    },
  };
}
