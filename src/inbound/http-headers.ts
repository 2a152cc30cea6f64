// RFC 9110 §7.6.1 (hop-by-hop fields: Connection and the fields it names), §7.6.3 (Via),
// §7.8 (Upgrade), RFC 9112 §3.2.2 (a proxy sets Host from an absolute-form target), §6.1 and
// §6.3 (a message's body is framed by Transfer-Encoding or Content-Length).
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

/**
 * Fields that frame or route the message. A Connection option naming one of them is ignored:
 * dropping Content-Length while the body still follows would make the next hop read that body
 * as a request of its own, with any Host.
 */
const NOT_CONNECTION_OPTIONS = new Set(['content-length', 'transfer-encoding', 'host']);

/**
 * The end-to-end fields of a message as raw `[name, value, ...]` pairs, with the case and order
 * the peer used, plus our Via entry. With `upgrade`, Connection (as "Upgrade") and Upgrade are
 * kept: the next hop must see them to switch protocols.
 */
export function endToEndHeaders(
  raw: readonly string[],
  viaEntry: string,
  upgrade = false,
): string[] {
  const names = lowerNames(raw);
  const listed = connectionOptions(raw, names);
  const out: string[] = [];
  let via = -1;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const value = raw[i + 1] ?? '';
    const lower = names[i >> 1] ?? '';
    if (upgrade && lower === 'connection') out.push(name, 'Upgrade');
    else if (upgrade && lower === 'upgrade') out.push(name, value);
    else if (!HOP_BY_HOP.has(lower) && listed?.has(lower) !== true) {
      if (lower === 'via') via = out.length;
      out.push(name, value);
    }
  }
  // Appended to the last Via field (the list order is the path order), or a field of its own.
  if (via < 0) out.push('Via', viaEntry);
  else out[via + 1] = `${out[via + 1] ?? ''}, ${viaEntry}`;
  return out;
}

/** The field names of raw pairs, lower-cased once for every test made on them. */
function lowerNames(raw: readonly string[]): string[] {
  const names = new Array<string>(raw.length >> 1);
  for (let i = 0; i + 1 < raw.length; i += 2) names[i >> 1] = (raw[i] ?? '').toLowerCase();
  return names;
}

/**
 * The fields to send to the origin for a client request: Host from the target, and the body
 * framed from what node:http parsed (never from the client's raw fields). An upgrade request
 * carries no body (one with a body is refused before it gets here).
 */
export function forwardedRequestHeaders(
  req: IncomingMessage,
  authority: string,
  viaEntry: string,
  upgrade = false,
): string[] {
  const headers: string[] = [];
  let hostAt = -1;
  const fields = endToEndHeaders(req.rawHeaders, viaEntry, upgrade);
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i] ?? '';
    const lower = name.toLowerCase();
    if (lower === 'content-length') continue;
    // The client's Host may name another site than the URL it asked for; the URL is what the
    // rules matched, so it is what the origin must see (RFC 9112 §3.2.2), once.
    if (lower === 'host') {
      if (hostAt < 0) hostAt = headers.push(name, authority) - 2;
      continue;
    }
    headers.push(name, fields[i + 1] ?? '');
  }
  if (hostAt < 0) headers.unshift('Host', authority);
  if (upgrade) return headers;
  // node:http de-chunks the body; one without a length is chunked again on this hop by the
  // client that sends it.
  const length = req.headers['content-length'];
  if (length !== undefined && req.headers['transfer-encoding'] === undefined) {
    headers.push('Content-Length', length);
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

/** The size of the head `rawHead` would write, without writing it. */
export function headSize(status: number, statusText: string, headers: readonly string[]): number {
  // "HTTP/1.1 " + status + " " + text + CRLF, then "name: value" CRLF each, then CRLF.
  let size = 9 + `${status}`.length + 1 + statusText.length + 2 + 2;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    size += (headers[i] ?? '').length + 2 + (headers[i + 1] ?? '').length + 2;
  }
  return size;
}

/**
 * The lower-cased field names listed in every Connection field, framing fields excepted;
 * undefined when there is none (most messages: no set to make).
 */
function connectionOptions(
  raw: readonly string[],
  names: readonly string[],
): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (let i = 0; i < names.length; i++) {
    if (names[i] !== 'connection') continue;
    for (const token of (raw[2 * i + 1] ?? '').split(',')) {
      const name = token.trim().toLowerCase();
      if (!NOT_CONNECTION_OPTIONS.has(name)) (listed ??= new Set()).add(name);
    }
  }
  return listed;
}
