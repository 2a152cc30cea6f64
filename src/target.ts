import { isIPv4, isIPv6 } from 'node:net';
import { Address6 } from 'ip-address';

/** A destination host, normalised once at the edge so rules and logs compare like with like. */
export type Host =
  | { readonly kind: 'ipv4' | 'ipv6'; readonly ip: string }
  | { readonly kind: 'domain'; readonly name: string };

export interface Target {
  readonly host: Host;
  readonly port: number;
}

const MAX_DOMAIN_LENGTH = 255;
// Letters, digits, hyphen, underscore (seen in real names), dots; no spaces or control bytes.
const DOMAIN_RE = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

/**
 * Turns a host string (an IP literal, possibly bracketed, or a name) into a Host.
 * IPv4-mapped IPv6 becomes IPv4 so one rule covers both spellings. Returns undefined
 * for anything that is neither a valid IP nor a plausible DNS name.
 */
export function parseHost(raw: string): Host | undefined {
  // Brackets are for IPv6 literals only ("[::1]"), as in URLs and CONNECT authorities.
  if (raw.startsWith('[') && raw.endsWith(']')) {
    const inner = raw.slice(1, -1);
    return isIPv6(inner) ? ipv6Host(inner) : undefined;
  }
  const text = raw;
  if (isIPv4(text)) return { kind: 'ipv4', ip: text };
  if (isIPv6(text)) return ipv6Host(text);
  if (text.includes(':')) return undefined;
  let name = text.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  const numeric = inetAton(name);
  if (numeric !== undefined) return { kind: 'ipv4', ip: numeric };
  if (name.length === 0 || name.length > MAX_DOMAIN_LENGTH || !DOMAIN_RE.test(name)) {
    return undefined;
  }
  // A name that is all digits and dots but not a valid IPv4 (e.g. 1.2.3.999) is garbage, not a name.
  if (/^[0-9.]+$/.test(name)) return undefined;
  return { kind: 'domain', name };
}

/**
 * inet_aton(3), which getaddrinfo applies to a host before any DNS, so `0x7f.1`, `127.1`,
 * `2130706433` and `0177.0.0.1` all connect to 127.0.0.1: 1 to 4 parts separated by dots, each
 * decimal, octal (a leading 0) or hexadecimal (0x), the last filling the bytes that remain.
 * Returns the dotted quad, or undefined when `text` is not such a number (a part out of range
 * included), which the resolver then takes for a name.
 */
export function inetAton(text: string): string | undefined {
  const parts = text.split('.');
  if (parts.length > 4) return undefined;
  const values: number[] = [];
  for (const part of parts) {
    const value = inetAtonPart(part);
    if (value === undefined) return undefined;
    values.push(value);
  }
  const last = values.pop() ?? 0;
  if (values.some((value) => value > 0xff)) return undefined;
  if (last >= 2 ** (8 * (4 - values.length))) return undefined;
  let address = last;
  values.forEach((value, i) => (address += value * 2 ** (24 - 8 * i)));
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join('.');
}

/** One part as strtoul(part, &end, 0) reads it, when it reads all of it and fits 32 bits. */
function inetAtonPart(part: string): number | undefined {
  const m = /^(?:0x([0-9a-f]+)|(0[0-7]*)|([1-9][0-9]*))$/i.exec(part);
  if (!m) return undefined;
  const [, hex, octal, decimal] = m;
  const value =
    hex !== undefined
      ? parseInt(hex, 16)
      : octal !== undefined
        ? parseInt(octal, 8)
        : Number(decimal);
  return value <= 0xffffffff ? value : undefined;
}

function ipv6Host(text: string): Host {
  const zoneless = text.split('%')[0] ?? text;
  const address = new Address6(zoneless);
  if (address.isMapped4()) return { kind: 'ipv4', ip: address.to4().correctForm() };
  return { kind: 'ipv6', ip: address.correctForm() };
}

/** Builds a Host from 4 or 16 raw address bytes (SOCKS wire format). */
export function hostFromBytes(bytes: Uint8Array): Host {
  if (bytes.length === 4) return { kind: 'ipv4', ip: bytes.join('.') };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) {
    groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  }
  return ipv6Host(groups.join(':'));
}

export function isValidPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** Parses "host:port" or "[v6]:port". Port 0 is allowed only when `allowZero` (listen addresses). */
export function parseHostPort(text: string, allowZero = false): Target | undefined {
  const match = /^(\[[^\]]+\]|[^:[\]]*):(\d{1,5})$/.exec(text);
  if (!match) return undefined;
  const [, hostPart = '', portPart = ''] = match;
  const port = Number(portPart);
  if (!(isValidPort(port) || (allowZero && port === 0))) return undefined;
  const host = parseHost(hostPart);
  return host ? { host, port } : undefined;
}

/** 127.0.0.0/8, ::1 and "localhost": reachable from this host only. */
export function isLoopback(host: Host): boolean {
  if (host.kind === 'domain') return host.name === 'localhost';
  return host.kind === 'ipv4' ? host.ip.startsWith('127.') : host.ip === '::1';
}

export function hostToString(host: Host): string {
  return host.kind === 'domain' ? host.name : host.ip;
}

/** The host as in a URL or authority: brackets around IPv6. */
export function formatHost(host: Host): string {
  return host.kind === 'ipv6' ? `[${host.ip}]` : hostToString(host);
}

/** "host:port" with brackets around IPv6, as in CONNECT request lines and logs. */
export function formatTarget(target: Target): string {
  return `${formatHost(target.host)}:${target.port}`;
}
