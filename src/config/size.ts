/**
 * Decimal units are powers of 1000 (as network rates are counted), binary ones powers of 1024.
 * `KB` is taken for the SI `kB`: nobody means 1024 by it in a rate any more than in a disk size.
 */
const UNIT_BYTES: Readonly<Record<string, number>> = {
  '': 1,
  B: 1,
  kB: 1000,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

/**
 * "500KB", "10MB", "1.5GB", "512KiB", "64 MiB", "1000" (bytes), optionally with "/s" as a rate
 * is written. Returns whole bytes, or undefined for anything else (a lower-case "b", which
 * would be bits, included).
 */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)(?:\/s)?$/.exec(text.trim());
  if (!match) return undefined;
  const [, amount = '', unit = ''] = match;
  const scale = UNIT_BYTES[unit];
  if (scale === undefined) return undefined;
  const bytes = Math.round(Number(amount) * scale);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
