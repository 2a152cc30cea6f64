// RFC 9110 §9.3.6 (CONNECT, through http-tunnel.ts), RFC 8446 via node:tls for https://
// proxies: an upstream HTTP proxy as one hop. Plain http:// requests are sent to it in
// absolute-form (RFC 9112 §3.2.2, http-link.ts), answering its challenges as CONNECT does.
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { ProxyUrl } from '../config/url.js';
import { errorCode, ProxyError } from '../errors.js';
import { hostToString, type Target } from '../target.js';
import { openTunnel } from './http-tunnel.js';
import { createProxyLink } from './http-link.js';
import type { ProxyAuth } from './proxy-auth/answerer.js';
import { CredentialLockout } from './proxy-auth/lockout.js';
import { basicAuthorization } from './proxy-auth/basic.js';
import { DEFAULT_POLICY, type SchemePolicy } from './proxy-auth/negotiate-schemes.js';
import type { Hop } from './types.js';

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
  policy: SchemePolicy = DEFAULT_POLICY,
): Hop {
  const server: Target = { host: url.host, port: url.port };
  const credentials =
    url.username === undefined
      ? undefined
      : { username: url.username, password: url.password ?? '' };
  const preemptive =
    credentials !== undefined && policy.preemptiveBasic
      ? basicAuthorization(credentials)
      : undefined;
  const auth: ProxyAuth = {
    credentials,
    policy,
    preemptive,
    memory: { last: undefined },
    lockout: new CredentialLockout(),
  };
  const open = (via: Duplex): Promise<Duplex> =>
    url.scheme === 'https' ? startTls(via, server, label, tls) : Promise.resolve(via);
  return {
    server,
    label,
    resolvesNames: true,
    ipv4Only: false,
    async connect(via, target, context, reopen) {
      return openTunnel(await open(via), {
        target,
        label,
        auth,
        via: context.via,
        log: context.log,
        // The old connection goes first, with whatever it was wrapped in.
        reopen:
          reopen &&
          (async () => {
            via.destroy();
            return open(await reopen());
          }),
      });
    },
    forwarding: {
      async open(via) {
        const blocked = auth.lockout.blocked();
        if (blocked) {
          via.destroy();
          throw blocked;
        }
        return open(via);
      },
      link: (conn, reuse, context) =>
        createProxyLink(conn, reuse, { label, auth, log: context.log }),
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

export { refusal } from './http-refusal.js';
