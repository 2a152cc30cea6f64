import { formatHost, parseHost, type Host } from '../target.js';

export const OUTBOUND_SCHEMES = [
  'http',
  'https',
  'socks4',
  'socks4a',
  'socks5',
  'socks5h',
] as const;
export type OutboundScheme = (typeof OUTBOUND_SCHEMES)[number];

export const INBOUND_SCHEMES = ['http', 'https', 'socks', 'socks4', 'socks5', 'mixed'] as const;
export type InboundScheme = (typeof INBOUND_SCHEMES)[number];

const DEFAULT_PORTS: Readonly<Record<OutboundScheme | InboundScheme, number>> = {
  http: 8080,
  https: 443,
  socks: 1080,
  socks4: 1080,
  socks4a: 1080,
  socks5: 1080,
  socks5h: 1080,
  mixed: 1080,
};

export interface ProxyUrl<S extends string> {
  readonly scheme: S;
  readonly host: Host;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
}

type Parsed<T> = { value: T; error?: undefined } | { value?: undefined; error: string };

/** The textual parts of `scheme://[userinfo@]host[:port][/]`, before any decoding. */
interface UrlParts {
  readonly scheme: string;
  readonly userinfo: string | undefined;
  readonly host: string;
  readonly port: string | undefined;
}

// The userinfo runs to the last "@": a password written with a raw "@" or "/" is still taken as
// a password, never echoed as part of a host in an error.
const URL_RE = /^([a-z0-9]+):\/\/(?:(.*)@)?(\[[^\]]*\]|[^:/?#@]*)(?::(\d*))?\/?$/i;

function splitUrl(text: string): UrlParts | undefined {
  const m = URL_RE.exec(text.trim());
  if (!m) return undefined;
  const [, scheme = '', userinfo, host = '', port] = m;
  return { scheme, userinfo, host, port };
}

/** The user and password of a userinfo, percent-decoded; undefined when that fails. */
function splitUserinfo(
  userinfo: string,
): { username: string; password: string | undefined } | undefined {
  const colon = userinfo.indexOf(':');
  try {
    return {
      username: decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon)),
      password: colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1)),
    };
  } catch {
    return undefined;
  }
}

function parseProxyUrl<S extends string>(
  text: string,
  schemes: readonly S[],
  defaultHost: string | undefined,
): Parsed<ProxyUrl<S>> {
  const parts = splitUrl(text);
  if (!parts) {
    return { error: `bad proxy URL "${maskUrl(text)}" (use scheme://[user:pass@]host:port)` };
  }
  const scheme = schemes.find((s) => s === parts.scheme.toLowerCase());
  if (!scheme) return { error: `unsupported scheme "${parts.scheme}" (use ${schemes.join(', ')})` };
  const hostText = parts.host;
  const host = parseHost(hostText === '' && defaultHost !== undefined ? defaultHost : hostText);
  if (!host) return { error: `bad host "${hostText}" in "${maskUrl(text)}"` };
  const portText = parts.port;
  const port = portText ? Number(portText) : DEFAULT_PORTS[scheme as keyof typeof DEFAULT_PORTS];
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return { error: `bad port "${portText ?? ''}" in "${maskUrl(text)}"` };
  }
  const credentials = parts.userinfo === undefined ? undefined : splitUserinfo(parts.userinfo);
  if (parts.userinfo !== undefined && !credentials) {
    return { error: `bad percent-encoding in the credentials of "${maskUrl(text)}"` };
  }
  return {
    value: {
      scheme,
      host,
      port,
      username: credentials?.username,
      password: credentials?.password,
    },
  };
}

/** `-F` and `outbounds[].url`: the host is required. */
export function parseOutboundUrl(text: string): Parsed<ProxyUrl<OutboundScheme>> {
  const parsed = parseProxyUrl(text, OUTBOUND_SCHEMES, undefined);
  if (parsed.value?.port === 0) return { error: `port 0 in "${maskUrl(text)}"` };
  return parsed;
}

/** `-L`: an omitted host means loopback, so exposing the gateway is always explicit. */
export function parseInboundUrl(text: string): Parsed<ProxyUrl<InboundScheme>> {
  const parsed = parseProxyUrl(text, INBOUND_SCHEMES, '127.0.0.1');
  if (
    parsed.value &&
    (parsed.value.username === undefined) !== (parsed.value.password === undefined)
  ) {
    return { error: `"${maskUrl(text)}": give both user and password, as user:pass@` };
  }
  return parsed;
}

/**
 * A proxy URL for logs and errors, rebuilt from its parsed parts: scheme, the user
 * (percent-encoded), "***" for a password, host and port, as in `http://svc:***@proxy:3128`.
 * Text that is not such a URL keeps nothing of what precedes its last "@", where a userinfo
 * would end.
 */
export function maskUrl(text: string): string {
  const parts = splitUrl(text);
  const credentials = parts?.userinfo === undefined ? undefined : splitUserinfo(parts.userinfo);
  if (!parts || (parts.userinfo !== undefined && !credentials)) return maskUnparsed(text.trim());
  const user =
    credentials === undefined
      ? ''
      : `${encodeURIComponent(credentials.username)}${credentials.password === undefined ? '' : ':***'}@`;
  const host = parseHost(parts.host);
  const hostText = host ? formatHost(host) : parts.host;
  const port = parts.port === undefined ? '' : `:${parts.port}`;
  return `${parts.scheme.toLowerCase()}://${user}${hostText}${port}`;
}

function maskUnparsed(text: string): string {
  const at = text.lastIndexOf('@');
  if (at < 0) return text;
  const scheme = /^[a-z0-9]+:\/\//i.exec(text)?.[0] ?? '';
  return `${scheme}***${text.slice(at)}`;
}
