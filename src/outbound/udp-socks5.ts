// RFC 1928 §4 UDP ASSOCIATE and §7 UDP relaying, as a client of an upstream SOCKS5 proxy
// (RFC 1929 username/password when the URL has credentials), spoken by the `socks` package.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { once } from 'node:events';
import { isIP, Socket } from 'node:net';
import { SocksClient, type SocksClientOptions } from 'socks';
import type { ProxyUrl } from '../config/url.js';
import { errorCode, ProxyError, toProxyError } from '../errors.js';
import { encodeUdpHeader, MAX_UDP_PAYLOAD, parseUdpDatagram } from '../inbound/socks-udp-codec.js';
import { localIp as tcpLocalIp } from '../local-ip.js';
import type { DestinationPolicy } from '../policy.js';
import { formatTarget, hostToString, parseHost, type Target } from '../target.js';
import { abortReason, dialTcp, policedLookup } from './direct.js';
import { fromSocksError } from './socks-hop.js';
import { createUdpResolver } from './udp-direct.js';
import {
  MAX_SEND_QUEUE_BYTES,
  type UdpChannel,
  type UdpOpenContext,
  type UdpOutbound,
} from './udp-types.js';

/** The configured proxy itself is not subject to deny_destinations (as for TCP chains). */
const ANY_DESTINATION: DestinationPolicy = { allows: () => true, isSelf: () => false };
const proxyLookup = policedLookup(ANY_DESTINATION);

/**
 * UDP through an upstream SOCKS5 proxy: per association, one TCP control connection that
 * carries an UDP ASSOCIATE and stays open (the upstream ends the association when it closes),
 * and one dgram socket, bound where the upstream sees us and connected to the relay address it
 * returned, so the kernel drops datagrams from anyone else. Each datagram is re-wrapped in the
 * RFC 1928 §7 header for the upstream; its replies are parsed strictly and unwrapped.
 * socks5: names are resolved here, and deny_destinations checked on the address; socks5h: names
 * are sent as they are, and the upstream resolves them.
 */
export function createSocks5Udp(
  url: ProxyUrl<'socks5' | 'socks5h'>,
  label: string,
  policy: DestinationPolicy,
): UdpOutbound {
  return {
    async open(context) {
      const { control, udp, relay } = await associate(url, label, context);
      return channel(url, label, policy, context, control, udp, relay);
    },
  };
}

interface Associated {
  readonly control: Socket;
  readonly udp: UdpSocket;
  readonly relay: { readonly address: string; readonly port: number };
}

async function associate(
  url: ProxyUrl<'socks5' | 'socks5h'>,
  label: string,
  context: UdpOpenContext,
): Promise<Associated> {
  const { signal } = context;
  const server: Target = { host: url.host, port: url.port };
  let stream;
  try {
    const what = `cannot reach upstream proxy ${label}`;
    ({ stream } = await dialTcp(server, context, ANY_DESTINATION, proxyLookup, what));
  } catch (err) {
    const error = toProxyError(err, new ProxyError('UPSTREAM_FAILED', label));
    if (error.code === 'CONNECT_TIMEOUT' || error.code === 'CLIENT_CLOSED') throw error;
    throw new ProxyError('UPSTREAM_FAILED', error.message);
  }
  stream.on('error', () => undefined);
  // dialTcp's stream is a net.Socket: its local address is where the upstream sees us.
  if (!(stream instanceof Socket)) {
    stream.destroy();
    throw new ProxyError('INTERNAL', 'the control connection is not a TCP socket');
  }
  const control = stream;
  const udp = createSocket({ type: isIP(localIp(control)) === 6 ? 'udp6' : 'udp4' });
  udp.on('error', () => undefined);
  let released = false;
  const onAbort = (): void => {
    if (released) return;
    released = true;
    control.destroy();
    udp.close();
  };
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    signal.throwIfAborted();
    // Bound where the upstream sees our control connection come from, and declared as such in
    // the request (RFC 1928 §6: DST is where the client will send from).
    // Exclusive: in a worker process, a cluster-shared socket would be bound by the primary.
    udp.bind({ port: 0, address: localIp(control), exclusive: true });
    await once(udp, 'listening');
    const timeout = Math.max(1, context.deadline - Date.now());
    const established = await socksAssociate(
      {
        command: 'associate',
        proxy: {
          host: hostToString(url.host),
          port: url.port,
          type: 5,
          ...(url.username === undefined ? {} : { userId: url.username }),
          ...(url.password === undefined ? {} : { password: url.password }),
        },
        destination: { host: localIp(control), port: udp.address().port },
        timeout,
      },
      control,
    );
    const relay = await relayAddress(established.remoteHost, control, label);
    udp.connect(relay.port, relay.address);
    await once(udp, 'connect');
    return { control, udp, relay };
  } catch (err) {
    onAbort();
    if (signal.aborted) {
      const reason = abortReason(signal);
      throw reason.code === 'CONNECT_TIMEOUT' ? timedOut(label) : reason;
    }
    if (err instanceof ProxyError) throw err;
    // A SocksClientError carries the options, password included: only its message is read.
    const message = err instanceof Error ? err.message : '';
    const hasCredentials = url.username !== undefined;
    const error = fromSocksError(message, label, 'a UDP relay (UDP ASSOCIATE)', hasCredentials);
    throw error.code === 'CONNECT_TIMEOUT' ? timedOut(label) : error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function timedOut(label: string): ProxyError {
  return new ProxyError('CONNECT_TIMEOUT', `upstream proxy ${label}: UDP ASSOCIATE timed out`);
}

/**
 * SocksClient.createConnection takes CONNECT only: an association is a client of our own over
 * the connected control socket, resolved on 'established' (the reply with the relay address).
 */
function socksAssociate(
  options: SocksClientOptions,
  control: Socket,
): Promise<{ remoteHost?: { host: string; port: number } | undefined }> {
  return new Promise((resolve, reject) => {
    const client = new SocksClient(options);
    client.once('established', (info) => {
      client.removeAllListeners();
      resolve(info);
    });
    client.once('error', (err) => {
      client.removeAllListeners();
      reject(err);
    });
    client.connect(control);
  });
}

/**
 * BND.ADDR/BND.PORT of the reply. An unspecified address (0.0.0.0 or ::, which many servers send)
 * means "the address you reached me at"; a name is resolved; a port 0 is unusable.
 */
async function relayAddress(
  remote: { host: string; port: number } | undefined,
  control: Socket,
  label: string,
): Promise<{ address: string; port: number }> {
  const host = remote?.host === undefined ? undefined : parseHost(remote.host);
  if (!remote || !host || remote.port === 0) {
    throw new ProxyError('UPSTREAM_FAILED', `upstream proxy ${label} gave no usable UDP relay`);
  }
  if (host.kind === 'domain') {
    const found = await dnsLookup(host.name, { family: isIP(localIp(control)) });
    return { address: found.address, port: remote.port };
  }
  const unspecified = host.ip === '0.0.0.0' || host.ip === '::';
  const address = unspecified ? (control.remoteAddress ?? host.ip) : host.ip;
  // Our dgram socket has the control connection's family; a relay of the other cannot be reached.
  if (isIP(address) !== isIP(localIp(control))) {
    throw new ProxyError(
      'UPSTREAM_FAILED',
      `upstream proxy ${label} gave a UDP relay (${address}) of another address family`,
    );
  }
  return { address, port: remote.port };
}

function channel(
  url: ProxyUrl<'socks5' | 'socks5h'>,
  label: string,
  policy: DestinationPolicy,
  context: UdpOpenContext,
  control: Socket,
  udp: UdpSocket,
  relay: Associated['relay'],
): UdpChannel {
  let closed = false;
  let deliver: ((from: Target, payload: Buffer) => void) | undefined;
  const onSent = (err: Error | null): void => {
    if (err) context.dropped('send_failed', errorCode(err) ?? err.message);
  };
  const frame = (to: Target, payload: Buffer): void => {
    if (closed) return;
    const header = encodeUdpHeader(to);
    if (header.length + payload.length > MAX_UDP_PAYLOAD) {
      context.dropped('too_big', `${payload.length} bytes do not fit in one wrapped datagram`);
      return;
    }
    if (udp.getSendQueueSize() > MAX_SEND_QUEUE_BYTES) {
      context.dropped('send_queue_full', `more than ${MAX_SEND_QUEUE_BYTES} bytes waiting`);
      return;
    }
    udp.send([header, payload], onSent);
  };
  const resolver = createUdpResolver(policy, context);

  udp.on('message', (message: Buffer) => {
    const parsed = parseUdpDatagram(message);
    if (parsed.kind === 'error') {
      context.dropped('malformed_reply', `from ${label}: ${parsed.reason}`);
    } else if (parsed.value.frag !== 0) {
      context.dropped('malformed_reply', `from ${label}: a fragment (FRAG != 0)`);
    } else {
      deliver?.(parsed.value.target, parsed.value.payload);
    }
  });
  // RFC 1928 §7: the association ends with its TCP connection. Nothing is expected on it.
  control.on('data', () => undefined);
  control.resume();
  control.once('close', () => {
    if (closed) return;
    context.failed(
      new ProxyError('UPSTREAM_FAILED', `upstream proxy ${label} ended the UDP association`),
    );
  });
  context.log.debug(
    { upstream: label, relay: `${relay.address}:${relay.port}` },
    'upstream UDP association open',
  );

  return {
    send(target, payload) {
      if (closed) return;
      if (url.scheme === 'socks5') {
        resolver.resolve(target, payload, frame);
      } else if (target.host.kind === 'domain' || policy.allows(target.host.ip)) {
        frame(target, payload);
      } else {
        context.dropped('denied', `${formatTarget(target)}: destination not allowed`);
      }
    },
    onMessage(fn) {
      deliver = fn;
    },
    close() {
      if (closed) return;
      closed = true;
      resolver.clear();
      control.destroy();
      udp.close();
    },
  };
}

/** Where the upstream sees the control connection come from. */
function localIp(control: Socket): string {
  return tcpLocalIp(control, '0.0.0.0');
}
