import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';

/** A scripted upstream proxy: it reads request heads and answers each as the test says. */
export interface HeadServer {
  readonly port: number;
  /** Numbers the next connection 1 again. */
  resetCount(): void;
  /** Closes every connection and the listener. */
  close(): Promise<void>;
}

/**
 * Calls `answer` for every request head (up to its blank line) on every connection, with the
 * connection's number from 1, so that a test can tell which requests shared a connection.
 */
export async function startHeadServer(
  answer: (socket: Socket, head: string, connection: number) => void,
): Promise<HeadServer> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    const connection = ++connections;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        answer(socket, head, connection);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    resetCount() {
      connections = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
