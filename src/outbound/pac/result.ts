// The result of a PAC file's FindProxyForURL (the Netscape PAC format, as browsers read it):
// entries separated by ";", each `DIRECT` or a keyword and a `host:port`, tried in order.
import { formatTarget, parseHost, parseHostPort, type Target } from '../../target.js';

/** How junction reaches each entry's proxy. */
export type PacScheme = 'http' | 'https' | 'socks4' | 'socks5h';

export type PacEntry =
  | { readonly kind: 'direct'; readonly text: 'DIRECT' }
  | {
      readonly kind: 'proxy';
      readonly scheme: PacScheme;
      readonly server: Target;
      /** The entry written back in canonical form ("PROXY 10.0.0.1:3128"), one per proxy. */
      readonly text: string;
    };

export interface PacResult {
  /** Usable entries in order, each proxy once. */
  readonly entries: readonly PacEntry[];
  /** Entries that are not understood, as written (for a log line). */
  readonly ignored: readonly string[];
}

interface Keyword {
  readonly scheme: PacScheme;
  readonly canonical: string;
  /** The port a browser assumes when the entry names none. */
  readonly defaultPort: number;
}

/**
 * `PROXY` and `HTTP` are an HTTP proxy; `HTTPS` one spoken to over TLS. `SOCKS` is SOCKS4, as
 * browsers read it, with names resolved before (the proxy may not know SOCKS4a); `SOCKS5` has
 * the proxy resolve names, as browsers do.
 */
const KEYWORDS: Readonly<Record<string, Keyword>> = {
  PROXY: { scheme: 'http', canonical: 'PROXY', defaultPort: 80 },
  HTTP: { scheme: 'http', canonical: 'PROXY', defaultPort: 80 },
  HTTPS: { scheme: 'https', canonical: 'HTTPS', defaultPort: 443 },
  SOCKS: { scheme: 'socks4', canonical: 'SOCKS', defaultPort: 1080 },
  SOCKS4: { scheme: 'socks4', canonical: 'SOCKS', defaultPort: 1080 },
  SOCKS5: { scheme: 'socks5h', canonical: 'SOCKS5', defaultPort: 1080 },
};

/** A PAC answer is short; anything longer is cut before it is parsed or logged. */
export const MAX_RESULT_LENGTH = 4096;

/**
 * Parses a FindProxyForURL result: keywords in any case, any spacing; empty entries skipped;
 * a repeated proxy kept once, at its first place. Never throws.
 */
export function parsePacResult(result: string): PacResult {
  const entries: PacEntry[] = [];
  const ignored: string[] = [];
  const seen = new Set<string>();
  for (const item of result.slice(0, MAX_RESULT_LENGTH).split(';')) {
    const words = item.trim().split(/\s+/);
    if (words[0] === '') continue;
    const entry = parseEntry(words);
    if (!entry) {
      ignored.push(item.trim());
      continue;
    }
    if (seen.has(entry.text)) continue;
    seen.add(entry.text);
    entries.push(entry);
  }
  return { entries, ignored };
}

function parseEntry(words: readonly string[]): PacEntry | undefined {
  const [word = '', address, ...extra] = words;
  const keyword = word.toUpperCase();
  if (extra.length > 0) return undefined;
  if (keyword === 'DIRECT')
    return address === undefined ? { kind: 'direct', text: 'DIRECT' } : undefined;
  const known = Object.hasOwn(KEYWORDS, keyword) ? KEYWORDS[keyword] : undefined;
  if (!known || address === undefined) return undefined;
  const server = serverOf(address, known.defaultPort);
  if (!server) return undefined;
  return {
    kind: 'proxy',
    scheme: known.scheme,
    server,
    text: `${known.canonical} ${formatTarget(server)}`,
  };
}

/** `host:port`, `[v6]:port`, or a host alone with the keyword's default port. */
function serverOf(address: string, defaultPort: number): Target | undefined {
  const withPort = parseHostPort(address);
  if (withPort) return withPort;
  const host = parseHost(address);
  return host ? { host, port: defaultPort } : undefined;
}
