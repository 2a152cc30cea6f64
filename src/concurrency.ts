/**
 * At most `limit` tasks run at once; up to `maxQueued` more wait their turn, in order. Past
 * that a task is refused at once rather than queued without bound.
 */
export interface ConcurrencyLimit {
  /** The task's promise, or undefined when the queue is full and the task was not started. */
  tryRun<T>(task: () => Promise<T>): Promise<T> | undefined;
  readonly running: number;
  readonly queued: number;
}

export function createConcurrencyLimit(limit: number, maxQueued: number): ConcurrencyLimit {
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = (): void => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  return {
    get running() {
      return running;
    },
    get queued() {
      return waiting.length;
    },
    tryRun<T>(task: () => Promise<T>): Promise<T> | undefined {
      if (running < limit) {
        running++;
        return task().finally(release);
      }
      if (waiting.length >= maxQueued) return undefined;
      // A released slot passes straight to the next waiter: `running` stays as it is.
      return new Promise<void>((resolve) => waiting.push(resolve)).then(() =>
        task().finally(release),
      );
    },
  };
}
