// RFC 1320: the MD4 message digest. NTLM derives its keys from MD4 of the password (MS-NLMP
// §3.3.2, NTOWFv2), and Node's OpenSSL 3 refuses md4 unless its legacy provider is loaded, which
// a program cannot count on: so it is computed here. MD4 is broken as a hash; NTLM only needs it
// as the fixed function the protocol names.

/** §3.4 round 1: F(X,Y,Z) = XY v not(X) Z, s = 3, 7, 11, 19 over words 0..15. */
const ROUND1_SHIFTS = [3, 7, 11, 19] as const;
/** Round 2: G(X,Y,Z) = XY v XZ v YZ, + 0x5A827999, words in column order. */
const ROUND2_ORDER = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15] as const;
const ROUND2_SHIFTS = [3, 5, 9, 13] as const;
/** Round 3: H(X,Y,Z) = X xor Y xor Z, + 0x6ED9EBA1, words in bit-reversed order. */
const ROUND3_ORDER = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15] as const;
const ROUND3_SHIFTS = [3, 9, 11, 15] as const;

const rotl = (x: number, s: number): number => ((x << s) | (x >>> (32 - s))) >>> 0;

export function md4(message: Buffer): Buffer {
  // §3.1-3.2: a 1 bit, zeros to 448 mod 512 bits, then the bit length as 64 bits little-endian.
  const padded = Buffer.alloc((((message.length + 8) >>> 6) + 1) * 64);
  message.copy(padded);
  padded[message.length] = 0x80;
  const bits = BigInt(message.length) * 8n;
  padded.writeBigUInt64LE(bits & 0xffffffffffffffffn, padded.length - 8);

  // §3.3: the registers A, B, C, D.
  let [h0, h1, h2, h3] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
  const x = new Uint32Array(16);
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readUInt32LE(block + i * 4);
    let [a, b, c, d] = [h0, h1, h2, h3];
    const step = (f: number, k: number, s: number): void => {
      const next = rotl((a + f + (x[k] ?? 0)) >>> 0, s);
      [a, b, c, d] = [d, next, b, c];
    };
    for (let i = 0; i < 16; i++) {
      step(((b & c) | (~b & d)) >>> 0, i, ROUND1_SHIFTS[i % 4] ?? 0);
    }
    for (let i = 0; i < 16; i++) {
      const g = ((b & c) | (b & d) | (c & d)) >>> 0;
      step((g + 0x5a827999) >>> 0, ROUND2_ORDER[i] ?? 0, ROUND2_SHIFTS[i % 4] ?? 0);
    }
    for (let i = 0; i < 16; i++) {
      step(((b ^ c ^ d) + 0x6ed9eba1) >>> 0, ROUND3_ORDER[i] ?? 0, ROUND3_SHIFTS[i % 4] ?? 0);
    }
    // Four steps a round bring the registers back to their places.
    h0 = (h0 + a) >>> 0;
    h1 = (h1 + b) >>> 0;
    h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0;
  }
  const digest = Buffer.alloc(16);
  [h0, h1, h2, h3].forEach((v, i) => digest.writeUInt32LE(v, i * 4));
  return digest;
}
