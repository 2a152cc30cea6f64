// RFC 9110 §7.6.3 (Via): a proxy appends "received-protocol received-by" to the Via list of every
// message it forwards, and can tell from that list that a request has come back to it (a loop).
import { randomBytes } from 'node:crypto';

/** One proxy's identity in Via lists: each HTTP listener draws its own. */
export interface Via {
  /**
   * Our received-by: `junction-` and 8 random hex digits. "junction" stays visible to whoever
   * reads the header; the token tells this listener apart from any other junction, in this
   * process (gateways may chain each other) or elsewhere.
   */
  readonly pseudonym: string;
  /** Our entry in a Via list: `1.1 junction-<8 hex>`. */
  readonly entry: string;
  /** True when one of these Via field values names us: the message has looped. */
  cameThroughUs(values: readonly string[]): boolean;
}

export function createVia(): Via {
  const pseudonym = `junction-${randomBytes(4).toString('hex')}`;
  // Our pseudonym as a received-by, wherever it sits in a list, with or without a comment.
  const own = new RegExp(`(?:^|[\\s,])${pseudonym}(?=$|[\\s,(])`, 'i');
  return {
    pseudonym,
    entry: `1.1 ${pseudonym}`,
    cameThroughUs: (values) => values.some((value) => own.test(value)),
  };
}

/** The values of every Via field in raw `[name, value, ...]` pairs, in order. */
export function viaValues(rawHeaders: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === 'via') values.push(rawHeaders[i + 1] ?? '');
  }
  return values;
}
