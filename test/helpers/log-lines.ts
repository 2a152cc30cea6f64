/** One JSON log line of a gateway under test. */
export type LogLine = Record<string, unknown> & { msg?: string };

/**
 * The log lines of a gateway (in this process or a child), and a wait for the first line that
 * matches: resolved by the line itself as it arrives, never by polling.
 */
export interface LogLines {
  readonly lines: LogLine[];
  /** Records a line and resolves the waits it matches. */
  push(line: LogLine): void;
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
}

/** `label` begins the timeout's error message (a gateway's name when there are several). */
export function collectLogLines(label = ''): LogLines {
  const lines: LogLine[] = [];
  const waiters = new Set<{
    readonly predicate: (line: LogLine) => boolean;
    readonly resolve: (line: LogLine) => void;
  }>();
  return {
    lines,
    push(line) {
      lines.push(line);
      for (const waiter of waiters) {
        if (waiter.predicate(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
    },
    waitFor(predicate, timeoutMs) {
      const found = lines.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise<LogLine>((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (line: LogLine) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `${label}no matching log line within ${timeoutMs}ms; last lines: ${JSON.stringify(lines.slice(-5))}`,
            ),
          );
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
  };
}
