// RFC 9112 §3.2.2 (absolute-form request-target), RFC 3986 §3.2 (authority): what a forward
// proxy request names, for http:// and ws:// (https:// and wss:// go through CONNECT).
import { parseHostPort, type Target } from '../target.js';

export interface AbsoluteTarget {
  readonly target: Target;
  /** The URL's host[:port], as the client wrote it (userinfo removed): the Host to send. */
  readonly authority: string;
  /** Path and query, exactly as received (not normalised: the origin decides what they mean). */
  readonly path: string;
}

const DEFAULT_PORTS: ReadonlyMap<string, number> = new Map([
  ['http', 80],
  ['ws', 80],
]);
const TLS_SCHEMES = new Set(['https', 'wss']);
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^#]*)/;

/** Parses an absolute-form request-target; a string is the reason it was refused (400). */
export function parseAbsoluteForm(url: string): AbsoluteTarget | string {
  const match = ABSOLUTE_FORM.exec(url);
  if (!match) {
    return 'this is a proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port';
  }
  const [, rawScheme = '', rawAuthority = '', rest = ''] = match;
  const scheme = rawScheme.toLowerCase();
  if (TLS_SCHEMES.has(scheme)) return `use CONNECT for ${scheme}:// targets`;
  const defaultPort = DEFAULT_PORTS.get(scheme);
  if (defaultPort === undefined) return `unsupported scheme "${scheme}"`;
  const authority = rawAuthority.slice(rawAuthority.lastIndexOf('@') + 1);
  const hasPort = /:\d*$/.test(authority) && !authority.endsWith(']');
  const withPort = hasPort
    ? authority.replace(/:$/, `:${defaultPort}`)
    : `${authority}:${defaultPort}`;
  const target = parseHostPort(withPort);
  if (!target) return `bad host in "${authority}"`;
  const path = rest === '' ? '/' : rest.startsWith('/') ? rest : `/${rest}`;
  return { target, authority, path };
}
