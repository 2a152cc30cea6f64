/** pino's numeric levels. */
export const LEVELS: Readonly<Record<number, string>> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

export type LogLine = Record<string, unknown> & { level?: number; msg?: string };

/**
 * What the soak needs from junction's log, counted as the lines arrive (a full soak writes
 * hundreds of thousands of them): levels, access lines by what they were for, and samples.
 */
export interface LogStats {
  /** Parses and counts one line; undefined when it is not JSON. */
  add(text: string): LogLine | undefined;
  /** Lines per level name. */
  readonly levels: ReadonlyMap<string, number>;
  /**
   * Access lines ("session") by `inbound/protocol/label/result`, where `label` names the target
   * (the scenario whose origin it is, "refused", "unresolvable").
   */
  readonly access: ReadonlyMap<string, number>;
  /** Lines at info or above that are not access lines, by message. */
  readonly messages: ReadonlyMap<string, number>;
  /** Lines at info or above about one client connection that are not access lines, by message. */
  readonly connectionLines: ReadonlyMap<string, number>;
  /** The first lines at warn or above, and lines that were not JSON. */
  readonly samples: readonly string[];
  readonly notJson: number;
}

const SAMPLE_LIMIT = 20;

export function createLogStats(label: (target: string) => string): LogStats {
  const levels = new Map<string, number>();
  const access = new Map<string, number>();
  const messages = new Map<string, number>();
  const samples: string[] = [];
  const connectionLines = new Map<string, number>();
  let notJson = 0;
  const bump = (map: Map<string, number>, key: string): void => {
    map.set(key, (map.get(key) ?? 0) + 1);
  };
  return {
    add(text) {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        notJson++;
        if (samples.length < SAMPLE_LIMIT) samples.push(`not JSON: ${text.slice(0, 300)}`);
        return undefined;
      }
      const level = LEVELS[line.level ?? 0] ?? `level ${String(line.level)}`;
      bump(levels, level);
      if ((line.level ?? 0) >= 40 && samples.length < SAMPLE_LIMIT) {
        samples.push(text.slice(0, 400));
      }
      if (line.msg === 'session') {
        const target = typeof line.target === 'string' ? label(line.target) : 'no target';
        const key = `${String(line.inbound)}/${String(line.protocol)}/${target}/${String(line.result)}`;
        bump(access, key);
      } else if ((line.level ?? 0) >= 30) {
        bump(messages, `${level}: ${String(line.msg)}`);
        if (line.client !== undefined) bump(connectionLines, `${level}: ${String(line.msg)}`);
      }
      return line;
    },
    levels,
    access,
    messages,
    connectionLines,
    samples,
    get notJson() {
      return notJson;
    },
  };
}
