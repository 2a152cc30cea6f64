import { ProxyError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { DestinationPolicy } from '../../policy.js';
import { formatHost, hostToString, type Target } from '../../target.js';
import { createChainOutbound } from '../chain.js';
import { abortReason, createDirectOutbound } from '../direct.js';
import { createFallbackOutbound, type FallbackOptions } from '../fallback.js';
import type { DialPurpose, Hop, Outbound } from '../types.js';
import { parsePacResult, type PacEntry, type PacResult } from './result.js';
import { compilePac, type PacScript } from './sandbox.js';
import { describeSource, readPacSource, type PacSource } from './source.js';

export type PacProxyEntry = Extract<PacEntry, { kind: 'proxy' }>;

export interface PacOutboundOptions {
  readonly name: string;
  readonly source: PacSource;
  /** How often the PAC file is read again. */
  readonly intervalMs: number;
  readonly policy: DestinationPolicy;
  /** The hop that reaches an entry's proxy, with the outbound's credentials. */
  readonly hopOf: (entry: PacProxyEntry) => Hop;
  /** For an answer with several entries, tried in order as a fallback group is. */
  readonly fallback: Pick<FallbackOptions, 'attemptTimeoutMs' | 'retryAfterMs'>;
  /**
   * Where loads are logged. The PAC file is read (and read again every interval) only when this
   * is given: a bare build (`junction check`) starts nothing in the background.
   */
  readonly log: Logger | undefined;
}

/** Until a PAC file has loaded, it is tried again this often (or every interval, if sooner). */
const RETRY_UNLOADED_MS = 30_000;
/** Answers kept per PAC file, one per URL asked; the oldest goes first past this. */
const MAX_ANSWERS = 10_000;
/** Outbounds kept, one per distinct answer and one per proxy; a script may invent many. */
const MAX_OUTBOUNDS = 256;

type Answer = { readonly result: PacResult } | { readonly error: string };

/** A loaded PAC file's sandbox, freed once it is replaced and no answer is being worked out. */
interface Loaded {
  readonly script: PacScript;
  busy: number;
  retired: boolean;
}

function retire(loaded: Loaded | undefined): void {
  if (!loaded) return;
  loaded.retired = true;
  if (loaded.busy === 0) loaded.script.close();
}

/**
 * An outbound that asks a PAC file where each target goes: FindProxyForURL(url, host) runs in a
 * sandbox (sandbox.ts), and its answer (result.ts) becomes direct, a proxy, or several tried in
 * order. Answers are kept per URL until the PAC file is read again; the outbounds built for
 * them are kept across reads, so their pools and member states stay. A read that fails keeps
 * the last PAC file that loaded; until one has loaded, sessions fail (UPSTREAM_FAILED).
 */
export function createPacOutbound(options: PacOutboundOptions): Outbound {
  const { name, source, log } = options;
  const shown = describeSource(source);
  let current: Loaded | undefined;
  let answers = new Map<string, Promise<Answer>>();
  const byAnswer = new Map<string, Outbound>();
  const byEntry = new Map<string, Outbound>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const load = async (logger: Logger): Promise<void> => {
    try {
      const text = await readPacSource(source);
      const compiled = await compilePac(text, { log: logger });
      if (closed) {
        compiled.close();
        return;
      }
      const previous = current;
      current = { script: compiled, busy: 0, retired: false };
      answers = new Map();
      retire(previous);
      logger.info(
        { outbound: name, pac: shown, bytes: Buffer.byteLength(text) },
        'PAC file loaded',
      );
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (current) {
        logger.warn(
          { outbound: name, pac: shown, reason },
          'PAC file not read again: the last one stays',
        );
      } else {
        logger.error(
          { outbound: name, pac: shown, reason },
          'PAC file not loaded: sessions through this outbound fail until it is',
        );
      }
    }
  };
  const schedule = (logger: Logger): void => {
    if (closed) return;
    const delay = current ? options.intervalMs : Math.min(options.intervalMs, RETRY_UNLOADED_MS);
    timer = setTimeout(() => {
      void load(logger).then(() => {
        schedule(logger);
      });
    }, delay);
    timer.unref();
  };
  const firstLoad = log ? load(log) : Promise.resolve();
  if (log) {
    void firstLoad.then(() => {
      schedule(log);
    });
  }

  const evaluate = async (loaded: Loaded, url: string, host: string): Promise<Answer> => {
    loaded.busy++;
    try {
      const text = await loaded.script.findProxy(url, host);
      const result = parsePacResult(text);
      log?.debug({ outbound: name, url, answer: text.slice(0, 200) }, 'PAC answer');
      if (result.ignored.length > 0) {
        log?.warn({ outbound: name, url, ignored: result.ignored }, 'PAC answer: entries ignored');
      }
      return { result };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      log?.warn({ outbound: name, url, reason }, 'PAC file gave no answer');
      return { error: reason };
    } finally {
      loaded.busy--;
      if (loaded.retired) retire(loaded);
    }
  };

  /** The PAC file's answer for `target`, worked out once per URL while the file stays. */
  const answerFor = async (
    target: Target,
    purpose: DialPurpose,
    signal: AbortSignal,
  ): Promise<PacResult> => {
    await untilAborted(firstLoad, signal);
    const loaded = current;
    if (!loaded) throw new ProxyError('UPSTREAM_FAILED', `outbound "${name}": PAC file not loaded`);
    const url = pacUrl(target, purpose);
    let pending = answers.get(url);
    if (!pending) {
      pending = evaluate(loaded, url, hostToString(target.host));
      remember(answers, url, pending, MAX_ANSWERS);
    }
    const answer = await untilAborted(pending, signal);
    if ('error' in answer) {
      throw new ProxyError('UPSTREAM_FAILED', `outbound "${name}": the PAC file gave no answer`);
    }
    if (answer.result.entries.length === 0) {
      throw new ProxyError(
        'UPSTREAM_FAILED',
        `outbound "${name}": the PAC file named no usable proxy`,
      );
    }
    return answer.result;
  };

  const entryOutbound = (entry: PacEntry): Outbound => {
    const known = byEntry.get(entry.text);
    if (known) return known;
    const memberName = `${name}: ${entry.text}`;
    const built =
      entry.kind === 'direct'
        ? createDirectOutbound(options.policy, memberName)
        : createChainOutbound(memberName, [options.hopOf(entry)], options.policy);
    remember(byEntry, entry.text, built, MAX_OUTBOUNDS);
    return built;
  };

  const outboundFor = (result: PacResult): Outbound => {
    const key = result.entries.map((e) => e.text).join('; ');
    const known = byAnswer.get(key);
    if (known) return known;
    const members = result.entries.map(entryOutbound);
    const built =
      members.length === 1 && members[0]
        ? members[0]
        : createFallbackOutbound(name, members, { ...options.fallback, checked: false });
    remember(byAnswer, key, built, MAX_OUTBOUNDS);
    return built;
  };

  return {
    name,
    async dial(target, context) {
      const result = await answerFor(target, context.purpose ?? 'tunnel', context.signal);
      return outboundFor(result).dial(target, context);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      retire(current);
    },
  };
}

/**
 * The URL given to FindProxyForURL. A dial knows the target, not the request: the path is "/"
 * (browsers, too, hide the path of https:// URLs from PAC files), and the scheme is http for
 * plain http:// requests and tunnels to port 80, https for other tunnels.
 */
export function pacUrl(target: Target, purpose: DialPurpose): string {
  const scheme = purpose === 'http' || target.port === 80 ? 'http' : 'https';
  const defaultPort = scheme === 'http' ? 80 : 443;
  const port = target.port === defaultPort ? '' : `:${target.port}`;
  return `${scheme}://${formatHost(target.host)}${port}/`;
}

/**
 * What a PAC file answers for one target, read and run once (`junction route`): the answer's
 * entries in canonical form, or why there is none.
 */
export async function askPacOnce(
  source: PacSource,
  target: Target,
  log: Logger,
): Promise<{ readonly answer: PacResult } | { readonly error: string }> {
  try {
    const loaded = await compilePac(await readPacSource(source), { log });
    try {
      const text = await loaded.findProxy(pacUrl(target, 'tunnel'), hostToString(target.host));
      return { answer: parsePacResult(text) };
    } finally {
      loaded.close();
    }
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/** A bounded map: past `max` entries the oldest is forgotten. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (map.size >= max) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}

/** `promise`, or the session's abort reason if it ends first. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}
