// RFC 1928 (SOCKS5 CONNECT), RFC 1929 (username/password), SOCKS4 and 4a (no RFC): an upstream
// SOCKS proxy as one hop, spoken by the `socks` package over the stream it is given.
import type { Duplex } from 'node:stream';
import { SocksClient } from 'socks';
import type { ProxyUrl } from '../config/url.js';
import { ProxyError, UPSTREAM_SOCKS5_REP } from '../errors.js';
import { formatTarget, hostToString, parseHost, type Target } from '../target.js';
import type { Connected, Hop } from './types.js';

type SocksScheme = 'socks4' | 'socks4a' | 'socks5' | 'socks5h';

/** Used when the caller gives no deadline; the session's signal normally ends a dial first. */
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * The socks package names the upstream's REP only in its error message, by its Socks5Response
 * enum name ("Socks5 proxy rejected connection - ConnectionRefused"); `socks` is pinned (~2.8.10)
 * and a unit test checks this table against the package's enum.
 */
export const SOCKS5_REPLY_NAMES: ReadonlyMap<string, number> = new Map([
  ['Failure', 0x01],
  ['NotAllowed', 0x02],
  ['NetworkUnreachable', 0x03],
  ['HostUnreachable', 0x04],
  ['ConnectionRefused', 0x05],
  ['TTLExpired', 0x06],
  ['CommandNotSupported', 0x07],
  ['AddressNotSupported', 0x08],
]);

const SOCKS5_REPLY_TEXT: ReadonlyMap<number, string> = new Map([
  [0x01, 'general failure'],
  [0x02, 'not allowed by its rules'],
  [0x03, 'network unreachable'],
  [0x04, 'host unreachable'],
  [0x05, 'connection refused'],
  [0x06, 'TTL expired (timed out)'],
  [0x07, 'command not supported'],
  [0x08, 'address type not supported'],
]);

/** The package's Socks4Response names: 0x5B rejected or failed, 0x5C/0x5D identd. */
const SOCKS4_REPLY_NAMES: ReadonlyMap<string, number> = new Map([
  ['Failed', 0x5b],
  ['Rejected', 0x5c],
  ['RejectedIdent', 0x5d],
]);

export function createSocksHop(url: ProxyUrl<SocksScheme>, label: string): Hop {
  const server: Target = { host: url.host, port: url.port };
  const type = url.scheme === 'socks4' || url.scheme === 'socks4a' ? 4 : 5;
  const hasCredentials = url.username !== undefined;
  return {
    server,
    label,
    resolvesNames: url.scheme === 'socks4a' || url.scheme === 'socks5h',
    ipv4Only: type === 4,
    async connect(via, target, { deadline }) {
      if (type === 4 && target.host.kind === 'ipv6') {
        via.destroy();
        throw new ProxyError(
          'ATYP_UNSUPPORTED',
          `upstream proxy ${label} speaks SOCKS4, which cannot carry the IPv6 address ${formatTarget(target)}`,
        );
      }
      const timeout = Math.max(1, (deadline ?? Date.now() + DEFAULT_TIMEOUT_MS) - Date.now());
      let established: { socket: Duplex; remoteHost?: { host: string; port: number } | undefined };
      try {
        established = await SocksClient.createConnection({
          command: 'connect',
          proxy: {
            host: hostToString(server.host),
            port: server.port,
            type,
            ...(url.username === undefined ? {} : { userId: url.username }),
            ...(type === 5 && url.password !== undefined ? { password: url.password } : {}),
          },
          destination: { host: hostToString(target.host), port: target.port },
          existing_socket: via,
          timeout,
        });
      } catch (err) {
        // A SocksClientError carries the whole options object, password included: only its
        // message is read, and the error itself goes no further.
        via.destroy();
        const message = err instanceof Error ? err.message : '';
        throw fromSocksError(message, label, formatTarget(target), hasCredentials);
      }
      const { socket, remoteHost } = established;
      await adoptEarlyBytes(socket);
      return { stream: socket, bound: boundOf(remoteHost) } satisfies Connected;
    },
  };
}

/**
 * Bytes that arrived with the reply are handed by the socks package to `socket.emit('data')` on
 * a setImmediate, and the socket is then resumed: whoever reads by then gets them, and otherwise
 * they are lost. So they are caught here (this setImmediate runs after the package's) and put
 * back into the stream's buffer, which is left as a fresh stream is: paused until someone reads.
 */
function adoptEarlyBytes(socket: Duplex): Promise<void> {
  const early: Buffer[] = [];
  const onData = (chunk: Buffer): void => {
    early.push(chunk);
  };
  socket.on('data', onData);
  return new Promise<void>((resolve) => {
    setImmediate(() => {
      socket.off('data', onData);
      socket.pause();
      // What node:http does with a socket it hands over after CONNECT: the next 'data' listener
      // or pipe() starts the flow again.
      (socket as { readableFlowing: boolean | null }).readableFlowing = null;
      if (early.length > 0) socket.unshift(Buffer.concat(early));
      resolve();
    });
  });
}

function boundOf(remote: { host: string; port: number } | undefined): Target | undefined {
  const host = remote?.host === undefined ? undefined : parseHost(remote.host);
  return host && remote ? { host, port: remote.port } : undefined;
}

/**
 * A socks package error message → ProxyError. An upstream SOCKS5 REP is kept in upstreamReply,
 * so a SOCKS5 client gets it unchanged; its HTTP status comes from UPSTREAM_SOCKS5_REP.
 */
export function fromSocksError(
  message: string,
  label: string,
  authority: string,
  hasCredentials: boolean,
): ProxyError {
  const rejected5 = /^Socks5 proxy rejected connection - (\w+)$/.exec(message);
  if (rejected5) {
    const rep = SOCKS5_REPLY_NAMES.get(rejected5[1] ?? '');
    if (rep === undefined) {
      return new ProxyError(
        'UPSTREAM_FAILED',
        `upstream proxy ${label} answered CONNECT ${authority} with an unassigned SOCKS5 reply`,
      );
    }
    const text = SOCKS5_REPLY_TEXT.get(rep) ?? 'failure';
    const hex = `0x${rep.toString(16).padStart(2, '0')}`;
    return new ProxyError(
      UPSTREAM_SOCKS5_REP.get(rep) ?? 'UPSTREAM_FAILED',
      `upstream proxy ${label} could not connect to ${authority}: ${text} (SOCKS5 reply ${hex})`,
      { reply: rep },
    );
  }
  const rejected4 = /^Socks4 Proxy rejected connection - \((\w+)\)$/.exec(message);
  if (rejected4) {
    const cd = SOCKS4_REPLY_NAMES.get(rejected4[1] ?? '') ?? 0x5b;
    return new ProxyError(
      'UPSTREAM_FAILED',
      `upstream proxy ${label} rejected or failed CONNECT ${authority} (SOCKS4 reply 0x${cd.toString(16)})`,
      { answered: true },
    );
  }
  if (message === 'Socks5 Authentication failed') {
    return new ProxyError('UPSTREAM_AUTH_FAILED', `upstream proxy ${label} authentication failed`);
  }
  if (message.includes('no accepted authentication type')) {
    const detail = hasCredentials
      ? ': it accepts none of the offered methods'
      : ': it wants credentials and none are configured';
    return new ProxyError(
      'UPSTREAM_AUTH_FAILED',
      `upstream proxy ${label} authentication failed${detail}`,
    );
  }
  if (message === 'Proxy connection timed out') {
    return new ProxyError('CONNECT_TIMEOUT', `upstream proxy ${label} did not answer in time`);
  }
  if (message.startsWith('Received invalid') || message.startsWith('Socks')) {
    return new ProxyError(
      'UPSTREAM_FAILED',
      `upstream proxy ${label} answered with an invalid SOCKS message: is it a SOCKS proxy?`,
    );
  }
  return new ProxyError(
    'UPSTREAM_FAILED',
    `upstream proxy ${label} closed the connection during the SOCKS handshake`,
  );
}
