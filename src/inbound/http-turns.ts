// RFC 9112 §9.3.2 (pipelining): a client may send requests without waiting for each answer, and
// gets the answers in the same order. A proxy that served each request as soon as it was parsed
// would open one outbound connection per pipelined request: here the requests of one client
// connection are served one at a time, in order, as Squid (pipeline_prefetch 0) and nginx do.
import type { Socket } from 'node:net';

/**
 * Requests parsed and waiting behind the one being served, past which the connection is not
 * read any more. Below it reading goes on, so a client that leaves is noticed at once; above it
 * memory stays bounded however many requests a client sends ahead.
 */
export const MAX_WAITING = 32;

/** One request's service: settles when its answer is over, and the next may start. */
export type Serve = () => Promise<void>;

export interface Turns {
  /**
   * Serves a request once every earlier request of the same connection is over. With
   * `handsOver` (CONNECT, Upgrade) node:http no longer reads the connection: it is left paused
   * for whoever takes it over.
   */
  take(socket: Socket, serve: Serve, handsOver?: boolean): void;
  /** True while a request of this connection is being served or waits its turn. */
  busy(socket: Socket): boolean;
}

interface Waiting {
  readonly start: () => void;
  readonly handsOver: boolean;
}

interface Line {
  serving: boolean;
  readonly waiting: Waiting[];
  /** Reading was stopped here (MAX_WAITING reached). */
  paused: boolean;
  /** The socket's 'resume' and 'close' are listened to (from the first request that waits). */
  watched: boolean;
}

/**
 * With MAX_WAITING requests waiting, the connection is not read (node:http still parses the
 * rest of the read in hand) until one of them starts. node:http resumes reading by itself
 * whenever a request ends (on a later tick), hence the pause again on 'resume'.
 */
export function createTurns(): Turns {
  const lines = new WeakMap<Socket, Line>();

  const lineOf = (socket: Socket): Line => {
    let line = lines.get(socket);
    if (line) return line;
    const created: Line = { serving: false, waiting: [], paused: false, watched: false };
    lines.set(socket, created);
    line = created;
    return line;
  };

  const watch = (socket: Socket, line: Line): void => {
    line.watched = true;
    socket.on('resume', () => {
      if (line.paused) socket.pause();
    });
    // Requests still waiting when the client leaves are never served (nor logged: no session).
    socket.once('close', () => {
      line.waiting.length = 0;
    });
  };

  /**
   * Serves one request. A function of its own, so that what waits for the answer (for a CONNECT,
   * the whole tunnel) keeps the socket and its line, not `serve` and the request it holds.
   */
  const begin = (socket: Socket, line: Line, serve: Serve): void => {
    line.serving = true;
    // Synchronously, like a listener of node:http's own event: a request not waiting behind
    // another is served exactly as if there were no turns.
    let served: Promise<void>;
    try {
      served = serve();
    } catch (err) {
      next(socket, line);
      throw err;
    }
    // A rejection was handled (answered, logged) by `serve`; only the turn passes on here.
    const after = (): void => {
      next(socket, line);
    };
    served.then(after, after);
  };

  const next = (socket: Socket, line: Line): void => {
    const following = socket.destroyed ? undefined : line.waiting.shift();
    if (!following) {
      line.serving = false;
      line.waiting.length = 0;
      return;
    }
    if (line.paused && line.waiting.length < MAX_WAITING) {
      line.paused = false;
      // A connection handed over is read by whoever took it, when it is ready to.
      if (!following.handsOver) socket.resume();
    }
    following.start();
  };

  return {
    take(socket, serve, handsOver = false) {
      const line = lineOf(socket);
      if (!line.serving) {
        begin(socket, line, serve);
        return;
      }
      const start = (): void => {
        begin(socket, line, serve);
      };
      // Most connections never have a request waiting (a CONNECT, one request at a time): the
      // socket is watched only once one does.
      if (!line.watched) watch(socket, line);
      line.waiting.push({ start, handsOver });
      if (line.waiting.length >= MAX_WAITING && !line.paused) {
        line.paused = true;
        socket.pause();
      }
    },
    busy(socket) {
      const line = lines.get(socket);
      return line !== undefined && (line.serving || line.waiting.length > 0);
    },
  };
}
