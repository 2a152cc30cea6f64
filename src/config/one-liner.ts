import type { Amend } from './load.js';
import { maskUrl, parseInboundUrl, parseOutboundUrl } from './url.js';
import { formatTarget } from '../target.js';

/** The embedded default: one mixed inbound on loopback, everything direct. */
export const DEFAULT_LISTEN = 'mixed://127.0.0.1:1080';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * Turns `-L` and `-F` URLs into configuration: each -L an inbound, the -F hops one outbound
 * named `forward` (a chain when there are several, first hop first) and a final catch-all
 * rule sending everything else through it.
 */
export function amendFromUrls(listen: readonly string[], forward: readonly string[]): Amend {
  const inbounds = listen.map((url) => inboundFromUrl(url));
  const hops = forward.map((url) => {
    const parsed = parseOutboundUrl(url);
    if (parsed.error !== undefined) throw new UsageError(`-F ${maskUrl(url)}: ${parsed.error}`);
    return url;
  });
  return (raw) => {
    if (inbounds.length > 0) {
      const existing = arrayAt(raw, 'inbounds');
      const names = new Set(existing.map((i) => (i as { name?: unknown }).name));
      for (const inbound of inbounds) {
        let name = inbound.name;
        for (let n = 2; names.has(name); n++) name = `${inbound.name}-${n}`;
        names.add(name);
        existing.push({ ...inbound, name });
      }
    }
    if (hops.length > 0) {
      const outbounds = arrayAt(raw, 'outbounds');
      if (hops.length === 1) {
        outbounds.push({ name: 'forward', url: hops[0] });
      } else {
        const names = hops.map((_, i) => `forward-${i + 1}`);
        hops.forEach((url, i) => outbounds.push({ name: names[i], url }));
        outbounds.push({ name: 'forward', chain: names });
      }
      arrayAt(raw, 'rules').push({ outbound: 'forward' });
    }
  };
}

const QUERY_HELP =
  'the parameters are ?cert=FILE&key=FILE, proxy_protocol=required|optional and proxy_protocol_from=CIDR[,CIDR]';

/**
 * The parameters of an -L URL: `?cert=FILE&key=FILE` (https and mixed: its tls block),
 * `proxy_protocol=required|optional` and `proxy_protocol_from=CIDR,CIDR`. The schema checks
 * their values, as it does the file's.
 */
function optionsFromQuery(url: string, query: string): Record<string, unknown> {
  if (query === '') return {};
  const params = new URLSearchParams(query);
  const known = ['cert', 'key', 'proxy_protocol', 'proxy_protocol_from'];
  const cert = params.get('cert');
  const key = params.get('key');
  const mode = params.get('proxy_protocol');
  const from = params.get('proxy_protocol_from');
  if ([...params.keys()].some((k) => !known.includes(k)) || (cert === null) !== (key === null)) {
    throw new UsageError(`-L ${maskUrl(url)}: ${QUERY_HELP}`);
  }
  return {
    ...(cert !== null && key !== null && { tls: { cert, key } }),
    ...(mode !== null && { proxy_protocol: mode }),
    ...(from !== null && { proxy_protocol_from: from.split(',') }),
  };
}

function inboundFromUrl(text: string): Record<string, unknown> & { name: string } {
  const at = text.indexOf('?');
  const url = at < 0 ? text : text.slice(0, at);
  const options = optionsFromQuery(url, at < 0 ? '' : text.slice(at + 1));
  const parsed = parseInboundUrl(url);
  if (parsed.error !== undefined) throw new UsageError(`-L ${maskUrl(url)}: ${parsed.error}`);
  const { scheme, host, port, username, password } = parsed.value;
  if (host.kind === 'domain' && host.name !== 'localhost') {
    throw new UsageError(`-L ${maskUrl(url)}: listen on an IP address, not a name`);
  }
  return {
    name: `${scheme}-${port}`,
    type: scheme,
    listen: formatTarget({ host, port }),
    ...options,
    ...(username !== undefined && password !== undefined
      ? { auth: { users: [{ username, password }] } }
      : {}),
  };
}

function arrayAt(raw: Record<string, unknown>, key: string): unknown[] {
  const value = raw[key];
  if (Array.isArray(value)) return value;
  if (value === undefined || value === null) {
    const created: unknown[] = [];
    raw[key] = created;
    return created;
  }
  throw new UsageError(`cannot add -L/-F to "${key}": it is not a list in the configuration file`);
}
