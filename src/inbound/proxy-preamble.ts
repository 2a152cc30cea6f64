import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import { parseProxyHeader, MAX_HEADER_BYTES, type Endpoint } from './proxy-protocol.js';
import type { Parsed } from './socks-codec.js';
import { closeWith, readMessage } from './socks-reader.js';

export type ProxyProtocolMode = 'required' | 'optional';

export interface PreambleOptions {
  readonly mode: ProxyProtocolMode;
  /** Whether the connecting peer is in `proxy_protocol_from`: only such a peer may send one. */
  readonly trusted: boolean;
  /** The connection's own address, kept when the header has none (LOCAL, UNKNOWN) or is absent. */
  readonly peer: Endpoint;
  readonly log: () => Logger;
  /** Counts a refusal (a missing, malformed or untrusted header). */
  readonly refused: () => void;
}

/**
 * Reads the PROXY protocol header a load balancer sends before the client's first byte, and
 * gives the client's address: the header's, or the connection's own when the header carries none
 * or (`optional`) there is no header. Bytes that are not a header stay for the inbound's
 * protocol, and so do those after it. Resolves undefined once the connection is closed: a
 * header from a peer outside `proxy_protocol_from`, a missing or malformed one under `required`
 * (each logged), or a balancer's health check, which connects and closes (after a LOCAL header
 * or none) and is logged at debug only. The listener's handshake deadline bounds the wait.
 */
export async function readProxyPreamble(
  socket: Socket,
  { mode, trusted, peer, log, refused }: PreambleOptions,
): Promise<Endpoint | undefined> {
  const refuse = async (reason: string): Promise<undefined> => {
    refused();
    await closeWith(socket);
    log().info({ reason }, 'PROXY protocol header refused');
    return undefined;
  };
  /** Closed before the protocol began: a refusal only when the deadline cut the header short. */
  const closed = async (
    timedOut: boolean,
    reason: string,
    afterHeader = false,
  ): Promise<undefined> => {
    await closeWith(socket);
    if (!timedOut) log().debug({ reason }, 'closed before the inbound protocol began');
    else if (afterHeader) log().info({ reason }, 'handshake failed');
    else {
      refused();
      log().info({ reason }, 'PROXY protocol header refused');
    }
    return undefined;
  };
  // Reset before it was accepted (a balancer's check), the socket has no peer address left.
  if (socket.remoteAddress === undefined) return closed(false, 'reset before it was accepted');
  if (mode === 'required' && !trusted)
    return refuse('the peer is not in proxy_protocol_from, and the inbound requires a header');

  const read = await readMessage(socket, parseProxyHeader, MAX_HEADER_BYTES);
  if (read.kind === 'closed') return closed(read.timedOut, read.reason);
  if (read.kind === 'error') return refuse(read.reason);
  const header = read.value;
  if (header === undefined) {
    return mode === 'required' ? refuse('no PROXY protocol header') : peer;
  }
  if (!trusted) return refuse('a header from a peer outside proxy_protocol_from');
  // A balancer's health check may send a header (LOCAL) and close: wait for the protocol's first
  // byte, so that it ends here like a check that sends nothing.
  const next = await readMessage(socket, anyByte, 1);
  if (next.kind !== 'ok') {
    return next.kind === 'closed' ? closed(next.timedOut, next.reason, true) : refuse(next.reason);
  }
  return header.command === 'proxy' ? header.source : peer;
}

/** One byte has arrived; it is left for the protocol. */
function anyByte(bytes: Buffer): Parsed<true> {
  return bytes.length > 0 ? { kind: 'ok', value: true, consumed: 0 } : { kind: 'incomplete' };
}
