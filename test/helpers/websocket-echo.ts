// RFC 6455 §4.2 (server handshake) and §5.2 (framing), as little of it as an echo needs: a
// WebSocket endpoint on an existing HTTP(S) origin that sends every text or binary message back.
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';

const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

export interface WebSocketUpgrade {
  readonly url: string;
  readonly remoteAddress: string;
  /** The messages echoed on this connection, as text. */
  readonly messages: string[];
}

/**
 * Answers upgrades to `path` on `server` with a WebSocket echo; other upgrades are refused with
 * 404. Every accepted upgrade is recorded, with the messages it echoed.
 */
export function serveWebSocketEcho(server: Server | HttpsServer, path = '/ws'): WebSocketUpgrade[] {
  const upgrades: WebSocketUpgrade[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    const key = req.headers['sec-websocket-key'];
    if ((req.url ?? '').split('?')[0] !== path || typeof key !== 'string') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(`${key}${ACCEPT_GUID}`).digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const upgrade: WebSocketUpgrade = {
      url: req.url ?? '',
      remoteAddress: req.socket.remoteAddress ?? '',
      messages: [],
    };
    upgrades.push(upgrade);
    let buffered = head;
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const frame = readFrame(buffered);
        if (!frame) return;
        buffered = buffered.subarray(frame.size);
        if (frame.opcode === OPCODE_CLOSE) {
          socket.end(encodeFrame(OPCODE_CLOSE, frame.payload.subarray(0, 2)));
          return;
        }
        if (frame.opcode === OPCODE_PING) {
          socket.write(encodeFrame(OPCODE_PONG, frame.payload));
        } else if (frame.opcode !== OPCODE_PONG) {
          upgrade.messages.push(frame.payload.toString('utf8'));
          socket.write(encodeFrame(frame.opcode, frame.payload));
        }
      }
    };
    socket.on('data', onData);
    if (head.length > 0) onData(Buffer.alloc(0));
  });
  return upgrades;
}

interface Frame {
  readonly opcode: number;
  readonly payload: Buffer;
  /** Bytes the frame took from the stream. */
  readonly size: number;
}

/** One complete frame (client frames are masked, §5.3), or undefined until it has arrived. */
function readFrame(data: Buffer): Frame | undefined {
  if (data.length < 2) return undefined;
  const opcode = data[0]! & 0x0f;
  const masked = (data[1]! & 0x80) !== 0;
  let length = data[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (data.length < 4) return undefined;
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return undefined;
    length = Number(data.readBigUInt64BE(2));
    offset = 10;
  }
  const mask = masked ? data.subarray(offset, offset + 4) : undefined;
  if (mask) offset += 4;
  if (data.length < offset + length) return undefined;
  const payload = Buffer.from(data.subarray(offset, offset + length));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return { opcode, payload, size: offset + length };
}

/** A final, unmasked frame, as a server sends. */
function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : payload.length < 0x10000
        ? Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 127]), bigLength(payload.length)]);
  return Buffer.concat([head, payload]);
}

function bigLength(length: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(length));
  return out;
}
