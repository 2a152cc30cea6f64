import { parseHost, type Host } from '../target.js';

export const OUTBOUND_SCHEMES = [
  'http',
  'https',
  'socks4',
  'socks4a',
  'socks5',
  'socks5h',
] as const;
export type OutboundScheme = (typeof OUTBOUND_SCHEMES)[number];

export const INBOUND_SCHEMES = ['http', 'socks', 'socks4', 'socks5', 'mixed'] as const;
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

function parseProxyUrl<S extends string>(
  text: string,
  schemes: readonly S[],
  defaultHost: string | undefined,
): Parsed<ProxyUrl<S>> {
  // The userinfo runs to the last "@": a password written with a raw "@" or "/" is still taken
  // as a password, never echoed as part of a host in an error.
  const m = /^([a-z0-9]+):\/\/(?:(.*)@)?(\[[^\]]*\]|[^:/?#@]*)(?::(\d*))?\/?$/i.exec(text.trim());
  if (!m) return { error: `bad proxy URL "${maskUrl(text)}" (use scheme://[user:pass@]host:port)` };
  const [, schemeText = '', userinfo, hostText = '', portText] = m;
  const scheme = schemes.find((s) => s === schemeText.toLowerCase());
  if (!scheme) return { error: `unsupported scheme "${schemeText}" (use ${schemes.join(', ')})` };
  const host = parseHost(hostText === '' && defaultHost !== undefined ? defaultHost : hostText);
  if (!host) return { error: `bad host "${hostText}" in "${maskUrl(text)}"` };
  const port = portText ? Number(portText) : DEFAULT_PORTS[scheme as keyof typeof DEFAULT_PORTS];
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return { error: `bad port "${portText ?? ''}" in "${maskUrl(text)}"` };
  }
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    try {
      username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
      password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
    } catch {
      return { error: `bad percent-encoding in the credentials of "${maskUrl(text)}"` };
    }
  }
  return { value: { scheme, host, port, username, password } };
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

/** Hides the password of a URL for logs and errors: http://user:***@host:port. */
export function maskUrl(text: string): string {
  return text.replace(/^([a-z0-9]+:\/\/[^:@/]*):.*@/i, '$1:***@');
}
