import { ProxyError, toProxyError } from '../errors.js';
import type { Logger } from '../log.js';
import { abortReason } from './direct.js';
import type { Connected, DialContext, Outbound } from './types.js';

/** Where a group reports its members' state (metrics.ts implements it). */
export interface MemberStateSink {
  memberState(group: string, member: string, up: boolean): void;
}

export interface FallbackOptions {
  /**
   * How long an attempt on a member may take when another member could still be tried; past it
   * the member counts as down and the next one gets the session's remaining connect time.
   * The group's `check.timeout` (default 5 s).
   */
  readonly attemptTimeoutMs: number;
  /**
   * Without a health checker, a member marked down is tried again (first among the down ones,
   * after the up ones) once this long has passed: passive recovery. The group's `check.interval`.
   */
  readonly retryAfterMs: number;
  /** True when a health checker brings members back; then only the checker (or a session that
   * got through a down member) marks a member up. */
  readonly checked: boolean;
  readonly metrics?: MemberStateSink | undefined;
}

export interface MemberStatus {
  readonly outbound: Outbound;
  up: boolean;
  /** `Date.now()` when marked down. */
  downSince: number;
}

export interface FallbackOutbound extends Outbound {
  readonly members: readonly MemberStatus[];
  /** For the health checker and sessions: both log only on a change. */
  markUp(member: string, log: Logger): void;
  markDown(member: string, reason: string, log: Logger): void;
}

/**
 * Is this failure the member's fault (its proxy unreachable, broken or refusing our
 * credentials), rather than the target's as reported by a working upstream? Only the member's
 * faults mark it down and move the session on to the next member.
 *
 * - UPSTREAM_AUTH_FAILED: always the member's.
 * - UPSTREAM_FAILED: the member's (proxy unreachable, closed the connection, not speaking its
 *   protocol, TLS to it failed) unless the proxy did answer the request, i.e. a SOCKS5 REP
 *   (`upstreamAnswered`: a SOCKS5 REP, an HTTP status, a SOCKS4 CD): a proxy that answers is
 *   working, and what it reports is about the target.
 * - CONNECT_TIMEOUT: the member's only when the group's own per-attempt limit ran out
 *   (`attemptTimedOut`); the session's connect timeout or a client that left ends the session,
 *   and says nothing about whose fault it was.
 * - Everything else (CONN_REFUSED, DNS_FAILED, HOST_UNREACHABLE, UPSTREAM_REFUSED,
 *   UPSTREAM_TIMEOUT, RULE_REJECT, DESTINATION_DENIED, ...): not the member's.
 */
export function isMemberFault(err: ProxyError, attemptTimedOut = false): boolean {
  switch (err.code) {
    case 'UPSTREAM_AUTH_FAILED':
      return true;
    case 'UPSTREAM_FAILED':
      return !err.upstreamAnswered;
    case 'CONNECT_TIMEOUT':
      return attemptTimedOut;
    default:
      return false;
  }
}

/**
 * A failover group: new sessions go to the first member marked up; a member whose failure is
 * its own (isMemberFault) is marked down at once and the session moves on to the next member,
 * within the session's remaining connect time. Members marked down are still tried, in order,
 * after the up ones (a checker may be behind), so a session fails only once every member was
 * tried or one of them reported a failure of the target. When all fail, the client gets the
 * last member's error.
 */
export function createFallbackOutbound(
  name: string,
  outbounds: readonly Outbound[],
  options: FallbackOptions,
): FallbackOutbound {
  const members: MemberStatus[] = outbounds.map((outbound) => ({
    outbound,
    up: true,
    downSince: 0,
  }));
  for (const member of members) options.metrics?.memberState(name, member.outbound.name, true);
  const find = (member: string): MemberStatus | undefined =>
    members.find((m) => m.outbound.name === member);

  const group: FallbackOutbound = {
    name,
    members,
    markUp(member, log) {
      const status = find(member);
      if (!status || status.up) return;
      status.up = true;
      log.info({ group: name, member }, 'fallback member up');
      options.metrics?.memberState(name, member, true);
    },
    markDown(member, reason, log) {
      const status = find(member);
      if (!status) return;
      status.downSince = Date.now();
      if (!status.up) return;
      status.up = false;
      log.warn({ group: name, member, reason }, 'fallback member down');
      options.metrics?.memberState(name, member, false);
    },
    async dial(target, context) {
      const now = Date.now();
      // Passive recovery: without a checker, a member down for long enough is worth a new try
      // before the others that are still down.
      const retry = (m: MemberStatus): boolean =>
        !options.checked && now - m.downSince >= options.retryAfterMs;
      const order = [
        ...members.filter((m) => m.up),
        ...members.filter((m) => !m.up && retry(m)),
        ...members.filter((m) => !m.up && !retry(m)),
      ];
      let last: ProxyError | undefined;
      for (const [i, member] of order.entries()) {
        if (context.signal.aborted) throw abortReason(context.signal);
        const more = i < order.length - 1;
        const attempt = await tryMember(member.outbound, target, context, {
          limitMs: more ? options.attemptTimeoutMs : undefined,
        });
        if (attempt.connected) {
          group.markUp(member.outbound.name, context.log);
          return attempt.connected;
        }
        last = attempt.error;
        if (!isMemberFault(attempt.error, attempt.timedOut)) throw attempt.error;
        group.markDown(member.outbound.name, attempt.error.message, context.log);
      }
      throw last ?? new ProxyError('INTERNAL', `fallback group "${name}" has no members`);
    },
    close() {
      for (const member of members) member.outbound.close?.();
    },
  };
  return group;
}

type Attempt =
  | { connected: Connected; error?: undefined; timedOut?: undefined }
  | { connected?: undefined; error: ProxyError; timedOut: boolean };

/** One member's dial, cut short after `limitMs` (when set) without ending the session. */
async function tryMember(
  outbound: Outbound,
  target: Parameters<Outbound['dial']>[0],
  context: DialContext,
  { limitMs }: { limitMs: number | undefined },
): Promise<Attempt> {
  if (limitMs === undefined) {
    try {
      return { connected: await outbound.dial(target, context) };
    } catch (err) {
      return { error: asProxyError(err), timedOut: false };
    }
  }
  const limit = new AbortController();
  const timer = setTimeout(() => {
    limit.abort(
      new ProxyError(
        'CONNECT_TIMEOUT',
        `outbound "${outbound.name}" did not connect within ${limitMs} ms`,
      ),
    );
  }, limitMs);
  const signal = AbortSignal.any([context.signal, limit.signal]);
  const deadline = Math.min(context.deadline ?? Infinity, Date.now() + limitMs);
  try {
    const connected = await outbound.dial(target, {
      ...context,
      signal,
      ...(Number.isFinite(deadline) ? { deadline } : {}),
    });
    return { connected };
  } catch (err) {
    const timedOut = limit.signal.aborted && !context.signal.aborted;
    return { error: asProxyError(err), timedOut };
  } finally {
    clearTimeout(timer);
  }
}

function asProxyError(err: unknown): ProxyError {
  return toProxyError(err, new ProxyError('INTERNAL', 'internal error'));
}
