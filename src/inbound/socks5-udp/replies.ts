/**
 * RFC 1928 §7, the way back: each datagram from an outbound channel is wrapped in the UDP
 * request header naming its real source and sent to the client from the relay socket.
 */
import type { Socket as UdpSocket } from 'node:dgram';
import { errorCode } from '../../errors.js';
import { MAX_SEND_QUEUE_BYTES } from '../../outbound/udp-types.js';
import { formatTarget, type Target } from '../../target.js';
import { encodeUdpHeader, MAX_UDP_PAYLOAD } from '../socks-udp-codec.js';
import type { ClientGate } from './client-gate.js';
import type { DropCounter } from './drops.js';
import type { Traffic } from './traffic.js';

export interface ReplyPath {
  /** Sends one reply to the client, or drops it (too big, send queue full, client unknown). */
  send(from: Target, payload: Buffer): void;
  /** Stops sending: the relay socket is about to close. */
  close(): void;
}

export function createReplyPath(
  relay: UdpSocket,
  gate: Pick<ClientGate, 'client'>,
  drops: DropCounter,
  traffic: Pick<Traffic, 'down'>,
): ReplyPath {
  let closed = false;
  // One callback for every send, rather than a closure per datagram.
  const onSent = (err: Error | null): void => {
    if (err) drops.dropped('send_failed', errorCode(err) ?? err.message);
  };
  return {
    send(from, payload) {
      const { client } = gate;
      // No client port yet: nothing was sent, so nothing legitimate can come back.
      if (closed || !client) return;
      const header = encodeUdpHeader(from);
      if (header.length + payload.length > MAX_UDP_PAYLOAD) {
        drops.dropped('too_big', `a ${payload.length}-byte reply from ${formatTarget(from)}`);
        return;
      }
      // The client reads slower than its targets send: drop rather than buffer without bound.
      if (relay.getSendQueueSize() > MAX_SEND_QUEUE_BYTES) {
        drops.dropped(
          'send_queue_full',
          `more than ${MAX_SEND_QUEUE_BYTES} bytes waiting for the client`,
        );
        return;
      }
      traffic.down(payload.length);
      relay.send([header, payload], client.port, client.ip, onSent);
    },
    close() {
      closed = true;
    },
  };
}
