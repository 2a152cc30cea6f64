// RFC 9110 §7.6.1 (hop-by-hop fields: Connection and the fields it names), §7.6.3 (Via),
// §7.8 (Upgrade), RFC 9112 §3.2.2 (a proxy sets Host from an absolute-form target).
import type { IncomingMessage } from 'node:http';

/** Fields that describe one connection, never the message: not forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const VIA = '1.1 junction';

/**
 * The end-to-end fields of a message as raw `[name, value, ...]` pairs, with the case and order
 * the peer used, plus our Via. With `upgrade`, Connection (as "Upgrade") and Upgrade are kept:
 * the next hop must see them to switch protocols.
 */
export function endToEndHeaders(raw: readonly string[], upgrade = false): string[] {
  const listed = connectionOptions(raw);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const value = raw[i + 1] ?? '';
    const lower = name.toLowerCase();
    if (upgrade && lower === 'connection') out.push(name, 'Upgrade');
    else if (upgrade && lower === 'upgrade') out.push(name, value);
    else if (!HOP_BY_HOP.has(lower) && !listed.has(lower)) out.push(name, value);
  }
  appendVia(out);
  return out;
}

/** The fields to send to the origin for a client request (Host from the target, our framing). */
export function forwardedRequestHeaders(
  req: IncomingMessage,
  authority: string,
  upgrade = false,
): string[] {
  const headers = endToEndHeaders(req.rawHeaders, upgrade);
  // The client's Host may name another site than the URL it asked for; the URL is what the
  // rules matched, so it is what the origin must see (RFC 9112 §3.2.2).
  const host = headers.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'host');
  if (host >= 0) headers[host + 1] = authority;
  else headers.unshift('Host', authority);
  // The body was de-chunked by node:http; chunked again on our hop (node frames it). An upgrade
  // request's body is not parsed by node:http, so it is not re-framed either.
  if (!upgrade && req.headers['transfer-encoding'] !== undefined) {
    headers.push('Transfer-Encoding', 'chunked');
  }
  return headers;
}

/** A status line and fields, for answers written straight to a socket. */
export function rawHead(res: IncomingMessage, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    head += `${headers[i] ?? ''}: ${headers[i + 1] ?? ''}\r\n`;
  }
  return `${head}\r\n`;
}

/** The lower-cased field names listed in every Connection field. */
function connectionOptions(raw: readonly string[]): Set<string> {
  const listed = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]?.toLowerCase() !== 'connection') continue;
    for (const token of (raw[i + 1] ?? '').split(',')) listed.add(token.trim().toLowerCase());
  }
  return listed;
}

/** Appends to the last Via field (the list order is the path order), or adds one. */
function appendVia(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i]?.toLowerCase() === 'via') {
      headers[i + 1] = `${headers[i + 1] ?? ''}, ${VIA}`;
      return;
    }
  }
  headers.push('Via', VIA);
}
