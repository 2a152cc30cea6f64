// RFC 9110 §9.3.6 (CONNECT), §11.7.2 (Proxy-Authorization) with RFC 7617 Basic, RFC 8446 via
// node:tls for https:// proxies: an upstream HTTP proxy as one hop. Plain http:// requests are
// sent to it in absolute-form by http-forward.ts (RFC 9112 §3.2.2), on the stream forwardHttp
// gives.
import { request, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { ProxyUrl } from '../config/url.js';
import { errorCode, ProxyError, UPSTREAM_HTTP_STATUS } from '../errors.js';
import { formatTarget, hostToString, type Target } from '../target.js';
import type { Connected, Hop } from './types.js';

export interface TlsOptions {
  /** PEM certificates to trust instead of the system's. */
  readonly ca?: string | undefined;
  /** The name sent as SNI and checked against the certificate (default: the proxy's host name). */
  readonly servername?: string | undefined;
  /** Skips certificate verification: for testing only. */
  readonly insecure?: boolean | undefined;
}

export function createHttpHop(
  url: ProxyUrl<'http' | 'https'>,
  label: string,
  tls: TlsOptions = {},
): Hop {
  const server: Target = { host: url.host, port: url.port };
  const authorization =
    url.username === undefined
      ? undefined
      : `Basic ${Buffer.from(`${url.username}:${url.password ?? ''}`, 'utf8').toString('base64')}`;
  const open = (via: Duplex): Promise<Duplex> =>
    url.scheme === 'https' ? startTls(via, server, label, tls) : Promise.resolve(via);
  return {
    server,
    label,
    resolvesNames: true,
    ipv4Only: false,
    async connect(via, target, context) {
      return connectThrough(await open(via), target, label, authorization, context.via);
    },
    async forwardHttp(via) {
      const stream = await open(via);
      return { stream, bound: undefined, httpProxy: { authorization, label, reused: false } };
    },
  };
}

/** TLS to the proxy itself, over whatever stream reaches it. */
function startTls(
  via: Duplex,
  server: Target,
  label: string,
  options: TlsOptions,
): Promise<Duplex> {
  const host = hostToString(server.host);
  // SNI carries names only (RFC 6066 §3): an IP-literal proxy gets none unless configured.
  const servername = options.servername ?? (server.host.kind === 'domain' ? host : undefined);
  return new Promise<Duplex>((resolve, reject) => {
    const socket = tlsConnect({
      socket: via,
      host: servername ?? host,
      ...(servername === undefined ? {} : { servername }),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      rejectUnauthorized: options.insecure !== true,
      ALPNProtocols: ['http/1.1'],
    });
    const fail = (reason: string): void => {
      socket.destroy();
      via.destroy();
      reject(new ProxyError('UPSTREAM_FAILED', `TLS to upstream proxy ${label} failed: ${reason}`));
    };
    const onError = (err: Error): void => {
      const code = errorCode(err) ?? err.message;
      const hint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)
        ? ' (trust its certificate with tls.ca, or name it with tls.servername)'
        : '';
      fail(`${code}${hint}`);
    };
    const onClose = (): void => {
      fail('connection closed during the handshake');
    };
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      socket.off('close', onClose);
      resolve(socket);
    });
  });
}

/**
 * `CONNECT host:port` on `stream`. node:http writes the request and parses the answer (with its
 * header size limits); its 'connect' event comes for every status, with the bytes read past the
 * head, which are pushed back onto the stream for whoever reads next.
 */
function connectThrough(
  stream: Duplex,
  target: Target,
  label: string,
  authorization: string | undefined,
  viaList: readonly string[] | undefined,
): Promise<Connected> {
  const authority = formatTarget(target);
  return new Promise<Connected>((resolve, reject) => {
    let settled = false;
    const fail = (err: ProxyError): void => {
      if (settled) return;
      settled = true;
      stream.destroy();
      reject(err);
    };
    // Not `agent: false`: node:http then ignores createConnection and dials host:port itself.
    const req = request({
      method: 'CONNECT',
      path: authority,
      setHost: false,
      headers: {
        Host: authority,
        ...(viaList === undefined ? {} : { Via: viaList.join(', ') }),
        ...(authorization === undefined ? {} : { 'Proxy-Authorization': authorization }),
      },
      createConnection: () => stream,
    });
    req.once('connect', (res: IncomingMessage, _socket: Duplex, head: Buffer) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 299) {
        fail(refusal(status, label, authority, authorization !== undefined));
        return;
      }
      settled = true;
      if (head.length > 0) stream.unshift(head);
      resolve({ stream, bound: undefined });
    });
    req.once('error', (err: Error) => {
      const code = errorCode(err);
      const why = code?.startsWith('HPE_')
        ? `answered CONNECT with something that is not HTTP (${code}): is it an HTTP proxy?`
        : `closed the connection before answering CONNECT ${authority}`;
      fail(new ProxyError('UPSTREAM_FAILED', `upstream proxy ${label} ${why}`));
    });
    req.end();
  });
}

/** An upstream's non-2xx answer as a ProxyError; table in errors.ts (UPSTREAM_HTTP_STATUS). */
export function refusal(
  status: number,
  label: string,
  authority: string,
  hasCredentials: boolean,
): ProxyError {
  const code = UPSTREAM_HTTP_STATUS.get(status) ?? 'UPSTREAM_FAILED';
  if (code === 'UPSTREAM_AUTH_FAILED') {
    const detail = hasCredentials ? '' : ': it wants credentials and none are configured';
    return new ProxyError(code, `upstream proxy ${label} authentication failed${detail}`);
  }
  const reason = STATUS_CODES[status] ?? 'Unknown';
  return new ProxyError(
    code,
    `upstream proxy ${label} answered ${status} ${reason} to CONNECT ${authority}`,
  );
}
