// RFC 9110 §9.3.6 (CONNECT) and RFC 9112 §6.3, §9.3 (message length, persistence): one CONNECT
// and its answer on a stream to an HTTP proxy, and what it takes to ask again on that stream.
import { request, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { errorCode, ProxyError } from '../errors.js';
import { challengeFields } from './proxy-auth/challenge.js';

export interface ConnectAnswer {
  readonly status: number;
  /** Every Proxy-Authenticate field, in order (node:http would join or drop repeats). */
  readonly challenges: readonly string[];
  /** Bytes read past the head: a tunnel's first bytes, or a refusal's body. */
  readonly head: Buffer;
  /**
   * For a refusal: the length of its body when the proxy keeps the connection open and says how
   * long the body is, so that it can be skipped and the stream asked again; undefined otherwise.
   */
  readonly reusableAfter: number | undefined;
}

/**
 * `CONNECT authority` on `stream`. node:http writes the request and parses the answer (with its
 * header size limits); its 'connect' event comes for every status, with the bytes read past the
 * head. Rejects with a ProxyError when the proxy closes or does not speak HTTP; the caller owns
 * the stream either way.
 */
export function sendConnect(
  stream: Duplex,
  authority: string,
  headers: Readonly<Record<string, string>>,
  label: string,
): Promise<ConnectAnswer> {
  return new Promise<ConnectAnswer>((resolve, reject) => {
    // Not `agent: false`: node:http then ignores createConnection and dials host:port itself.
    const req = request({
      method: 'CONNECT',
      path: authority,
      setHost: false,
      headers: { Host: authority, ...headers },
      createConnection: () => stream,
    });
    req.once('connect', (res: IncomingMessage, _socket: Duplex, head: Buffer) => {
      const status = res.statusCode ?? 0;
      resolve({
        status,
        challenges: challengeFields(res.rawHeaders),
        head,
        reusableAfter: status >= 200 && status <= 299 ? undefined : reusableAfter(res),
      });
    });
    req.once('error', (err: Error) => {
      const code = errorCode(err);
      const why = code?.startsWith('HPE_')
        ? `answered CONNECT with something that is not HTTP (${code}): is it an HTTP proxy?`
        : `closed the connection before answering CONNECT ${authority}`;
      reject(new ProxyError('UPSTREAM_FAILED', `upstream proxy ${label} ${why}`));
    });
    req.end();
  });
}

/** A refusal's body longer than this is not worth reading to keep the connection. */
const MAX_SKIPPED_BODY = 64 * 1024;

function reusableAfter(res: IncomingMessage): number | undefined {
  const tokens = [res.headers.connection, res.headers['proxy-connection']]
    .join(',')
    .toLowerCase()
    .split(',')
    .map((token) => token.trim());
  const persistent = tokens.includes('close')
    ? false
    : res.httpVersion === '1.1' || tokens.includes('keep-alive');
  const length = res.headers['content-length'];
  // Without Content-Length (or with a transfer coding) the body runs to the close, or must be
  // decoded: a new connection is simpler than either.
  if (!persistent || res.headers['transfer-encoding'] !== undefined || length === undefined) {
    return undefined;
  }
  const bytes = Number(length);
  return Number.isSafeInteger(bytes) && bytes >= 0 && bytes <= MAX_SKIPPED_BODY ? bytes : undefined;
}

/** Reads and drops a refusal's body of `length` bytes, `head` being its first bytes. */
export function skipBody(
  stream: Duplex,
  head: Buffer,
  length: number,
  label: string,
): Promise<void> {
  if (head.length >= length) {
    if (head.length > length) stream.unshift(head.subarray(length));
    return Promise.resolve();
  }
  let left = length - head.length;
  // 'readable' and read(), not 'data' and pause(): once the last 'readable' listener is gone the
  // stream is neither flowing nor paused, so the next request's 'data' listener starts it again.
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onEnd);
    };
    const onReadable = (): void => {
      for (let chunk: unknown; left > 0 && (chunk = stream.read()) !== null;) {
        const bytes = chunk as Buffer;
        if (bytes.length > left) stream.unshift(bytes.subarray(left));
        left -= Math.min(left, bytes.length);
      }
      if (left > 0) return;
      cleanup();
      resolve();
    };
    const onEnd = (): void => {
      cleanup();
      reject(new ProxyError('UPSTREAM_FAILED', `upstream proxy ${label} closed the connection`));
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onEnd);
  });
}
