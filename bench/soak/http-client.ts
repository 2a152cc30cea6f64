// RFC 9112: just enough of an HTTP/1.1 client to write requests back to back (pipelining) and
// read each response exactly: status, fields, and a body framed by Content-Length or chunked.
import type { RawClient } from '../../test/helpers/net.js';
import { basicAuth, type Credentials } from './ways.js';

export interface Request {
  readonly method: 'GET' | 'POST';
  /** Absolute-form: http://host:port/path */
  readonly url: string;
  readonly body?: Buffer;
}

export interface Response {
  readonly status: number;
  /** Field names in lower case; a repeated field keeps its last value. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

/** The bytes of one request to a forward proxy, kept-alive. */
export function requestBytes(request: Request, credentials: Credentials | undefined): Buffer {
  const { host } = new URL(request.url);
  let head = `${request.method} ${request.url} HTTP/1.1\r\nHost: ${host}\r\n`;
  if (credentials) head += `Proxy-Authorization: ${basicAuth(credentials)}\r\n`;
  if (request.body) head += `Content-Length: ${request.body.length}\r\n`;
  head += '\r\n';
  const bytes = Buffer.from(head, 'latin1');
  return request.body ? Buffer.concat([bytes, request.body]) : bytes;
}

export async function readHead(
  client: RawClient,
  timeoutMs: number,
): Promise<Omit<Response, 'body'>> {
  const text = (await client.readUntil('\r\n\r\n', timeoutMs)).toString('latin1');
  const [statusLine = '', ...fields] = text.slice(0, -4).split('\r\n');
  const status = /^HTTP\/1\.1 (\d{3})(?: |$)/.exec(statusLine)?.[1];
  if (status === undefined) throw new Error(`bad status line "${statusLine.slice(0, 40)}"`);
  const headers = new Map<string, string>();
  for (const field of fields) {
    const colon = field.indexOf(':');
    if (colon <= 0) throw new Error(`bad header field "${field.slice(0, 40)}"`);
    headers.set(field.slice(0, colon).trim().toLowerCase(), field.slice(colon + 1).trim());
  }
  return { status: Number(status), headers };
}

/** Reads one whole response; rejects if the connection ends before its body does. */
export async function readResponse(client: RawClient, timeoutMs: number): Promise<Response> {
  const head = await readHead(client, timeoutMs);
  return { ...head, body: await readBody(client, head.headers, timeoutMs) };
}

export async function readBody(
  client: RawClient,
  headers: ReadonlyMap<string, string>,
  timeoutMs: number,
): Promise<Buffer> {
  const length = headers.get('content-length');
  if (length !== undefined) return client.read(Number(length), timeoutMs);
  if (/chunked/i.test(headers.get('transfer-encoding') ?? ''))
    return readChunked(client, timeoutMs);
  if (/close/i.test(headers.get('connection') ?? '')) return client.readToEnd(timeoutMs);
  return Buffer.alloc(0);
}

async function readChunked(client: RawClient, timeoutMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (;;) {
    const line = (await client.readUntil('\r\n', timeoutMs)).toString('latin1');
    const size = parseInt(line, 16);
    if (!Number.isFinite(size)) throw new Error(`bad chunk size line "${line.slice(0, 20)}"`);
    if (size === 0) break;
    chunks.push(await client.read(size, timeoutMs));
    if ((await client.read(2, timeoutMs)).toString('latin1') !== '\r\n') {
      throw new Error('chunk not followed by CRLF');
    }
  }
  // Trailer fields, if any, up to the empty line.
  while ((await client.readUntil('\r\n', timeoutMs)).length > 2);
  return Buffer.concat(chunks);
}
