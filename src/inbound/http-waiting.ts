// RFC 9110 §9.3.6 (CONNECT) and §7.8 (Upgrade): until the answer, the client's bytes belong to
// the tunnel to come. Squid (half_closed_clients off, its default) and nginx (499) take a client
// that closes its side while waiting for the upstream as gone: so does junction, so the upstream
// connection is closed at once instead of at a timeout.
import type { Socket } from 'node:net';

/** Bytes held for the target while waiting; past this the client is no longer read. */
const HOLD_LIMIT = 64 * 1024;

export interface WaitingClient {
  /** Stops watching; the bytes held go back onto the socket, to be relayed first. */
  release(): void;
}

/**
 * Watches a client whose socket node:http has handed over (CONNECT, Upgrade) while its answer
 * is pending: the bytes it sends are held, and its FIN or reset calls `onLeave` once. Past
 * HOLD_LIMIT the socket is paused: the wait is then bounded by its own timeout alone.
 */
export function watchWaitingClient(socket: Socket, onLeave: () => void): WaitingClient {
  const held: Buffer[] = [];
  let size = 0;
  let left = false;
  const onData = (chunk: Buffer): void => {
    held.push(chunk);
    size += chunk.length;
    if (size >= HOLD_LIMIT) socket.pause();
  };
  const leave = (): void => {
    if (left) return;
    left = true;
    onLeave();
  };
  socket.on('data', onData);
  socket.on('end', leave);
  socket.on('close', leave);
  // Its FIN may have come with the request itself.
  if (socket.readableEnded || socket.destroyed) process.nextTick(leave);
  socket.resume();
  return {
    release() {
      socket.off('data', onData);
      socket.off('end', leave);
      socket.off('close', leave);
      socket.pause();
      if (size > 0 && !socket.destroyed) socket.unshift(Buffer.concat(held, size));
    },
  };
}
