import type { Duplex } from 'node:stream';

/**
 * Idle kept-alive connections to an upstream HTTP proxy, for plain http:// requests. A
 * connection is filed under the target it carried requests for and handed out again only for
 * that target, so one client's request never travels on a connection opened for another site.
 * Only node:http decides that a connection is reusable (it emits 'free' after a complete
 * exchange the proxy agreed to keep open); anything else (an error, a close, a byte nobody asked
 * for, too long idle) destroys it.
 */
export interface HttpPool {
  /** The most recently idled healthy connection for `key`, removed from the pool. */
  take(key: string): Duplex | undefined;
  put(key: string, stream: Duplex): void;
  readonly size: number;
}

export interface PoolLimits {
  /** Closed after this long unused: below the usual proxy keep-alive timeouts (undici uses 4 s). */
  readonly idleMs: number;
  readonly perTarget: number;
  readonly total: number;
}

export const DEFAULT_POOL_LIMITS: PoolLimits = { idleMs: 4_000, perTarget: 4, total: 64 };

interface Idle {
  readonly stream: Duplex;
  /** Stops watching the stream (timer and listeners) without closing it. */
  readonly release: () => void;
}

type Unrefable = Duplex & { ref?: () => void; unref?: () => void };

export function createHttpPool(limits: PoolLimits = DEFAULT_POOL_LIMITS): HttpPool {
  const idle = new Map<string, Idle[]>();
  let size = 0;

  const remove = (key: string, entry: Idle): void => {
    const list = idle.get(key);
    const at = list?.indexOf(entry) ?? -1;
    if (!list || at < 0) return;
    list.splice(at, 1);
    size--;
    if (list.length === 0) idle.delete(key);
  };

  const evictOldest = (): void => {
    const [key, list] = idle.entries().next().value ?? [];
    const oldest = list?.[0];
    if (key === undefined || !oldest) return;
    remove(key, oldest);
    oldest.release();
    oldest.stream.destroy();
  };

  return {
    get size() {
      return size;
    },
    take(key) {
      const list = idle.get(key);
      while (list && list.length > 0) {
        const entry = list[list.length - 1] as Idle;
        remove(key, entry);
        entry.release();
        if (usable(entry.stream)) return entry.stream;
        entry.stream.destroy();
      }
      return undefined;
    },
    put(key, stream) {
      if (!usable(stream)) {
        stream.destroy();
        return;
      }
      const list = idle.get(key) ?? [];
      if (list.length >= limits.perTarget) {
        const oldest = list[0] as Idle;
        remove(key, oldest);
        oldest.release();
        oldest.stream.destroy();
      }
      if (size >= limits.total) evictOldest();
      const discard = (): void => {
        remove(key, entry);
        entry.release();
        stream.destroy();
      };
      const timer = setTimeout(discard, limits.idleMs);
      timer.unref();
      // While idle the proxy has nothing to say: data, a FIN or an error all mean "do not reuse".
      stream.on('data', discard);
      stream.on('end', discard);
      stream.on('error', discard);
      stream.on('close', discard);
      // An idle connection does not keep the process alive (shutdown, tests).
      (stream as Unrefable).unref?.();
      const entry: Idle = {
        stream,
        release: () => {
          clearTimeout(timer);
          stream.off('data', discard);
          stream.off('end', discard);
          stream.off('error', discard);
          stream.off('close', discard);
          (stream as Unrefable).ref?.();
        },
      };
      list.push(entry);
      if (!idle.has(key)) idle.set(key, list);
      size++;
    },
  };
}

function usable(stream: Duplex): boolean {
  return !stream.destroyed && stream.writable && !stream.readableEnded;
}
