import type { Config, RateConfig } from './config/schema.js';
import { ProxyError } from './errors.js';
import type { RelayRate } from './relay.js';
import { createTokenBucket, type TokenBucket } from './token-bucket.js';

/**
 * The rates and the per-user cap of one configuration. The buckets and counts themselves are
 * kept by a SessionLimiter, which outlives reloads: a session that started under one
 * configuration shares its inbound's and its user's buckets with those started under the next.
 */
export interface RatePlan {
  /** Each inbound's own rate, or limits.rate; absent: not limited. */
  readonly inbounds: ReadonlyMap<string, RateConfig>;
  /** By user name, over every inbound (the schema refuses two different rates for one name). */
  readonly users: ReadonlyMap<string, RateConfig>;
  readonly maxSessionsPerUser: number | undefined;
}

export function ratePlan(config: Config): RatePlan {
  const inbounds = new Map<string, RateConfig>();
  const users = new Map<string, RateConfig>();
  for (const inbound of config.inbounds) {
    const rate = inbound.rate ?? config.limits.rate;
    if (rate) inbounds.set(inbound.name, rate);
    for (const user of inbound.auth?.users ?? []) {
      if (user.rate) users.set(user.username, user.rate);
    }
  }
  return { inbounds, users, maxSessionsPerUser: config.limits.max_sessions_per_user };
}

/** A session let in: the buckets it is charged to, and its place to give back when it ends. */
export interface Admission {
  /** Undefined when no rate applies: the session relays with plain `pipe`. */
  readonly rate: RelayRate | undefined;
  /** Gives back the session's place and its hold on its buckets. Call once. */
  release(): void;
}

export interface SessionLimiter {
  /** Lets a session in, or refuses it (USER_LIMIT) when its user has the most sessions allowed. */
  admit(inbound: string, user: string | undefined, plan: RatePlan): Admission | ProxyError;
  /** Moves every bucket in use to the rate `plan` gives it (Infinity where it gives none). */
  retune(plan: RatePlan): void;
  /** Live sessions of `user`. */
  sessionsOf(user: string): number;
}

type Direction = 'up' | 'down';
type Scope = 'inbound' | 'user';

interface Held {
  readonly scope: Scope;
  readonly name: string;
  readonly direction: Direction;
  readonly bucket: TokenBucket;
  holders: number;
}

/** A session without user and rate costs nothing here: most sessions are such. */
const UNLIMITED: Admission = { rate: undefined, release: () => undefined };

function rateOf(plan: RatePlan, scope: Scope, name: string, direction: Direction): number {
  const rate = (scope === 'inbound' ? plan.inbounds : plan.users).get(name)?.[direction];
  return rate ?? Infinity;
}

export function createSessionLimiter(now?: () => number): SessionLimiter {
  const buckets = new Map<string, Held>();
  const perUser = new Map<string, number>();

  const hold = (scope: Scope, name: string, direction: Direction, rate: number): Held => {
    const key = `${scope} ${direction} ${name}`;
    let held = buckets.get(key);
    if (!held) {
      held = { scope, name, direction, bucket: createTokenBucket(rate, now), holders: 0 };
      buckets.set(key, held);
    } else if (held.bucket.rate !== rate) {
      held.bucket.setRate(rate);
    }
    held.holders++;
    return held;
  };
  const letGo = (held: Held): void => {
    // The last session gone, the bucket goes too: names come and go with the configuration.
    if (--held.holders === 0) buckets.delete(`${held.scope} ${held.direction} ${held.name}`);
  };

  return {
    admit(inbound, user, plan) {
      const max = plan.maxSessionsPerUser;
      const count = user === undefined ? 0 : (perUser.get(user) ?? 0);
      if (user !== undefined && max !== undefined && count >= max) {
        return new ProxyError(
          'USER_LIMIT',
          `user "${user}" has ${max} sessions already (max_sessions_per_user)`,
        );
      }
      const inboundRate = plan.inbounds.get(inbound);
      const userRate = user === undefined ? undefined : plan.users.get(user);
      if (user === undefined && inboundRate === undefined) return UNLIMITED;
      if (user !== undefined) perUser.set(user, count + 1);
      const held: Held[] = [];
      const scopes = [
        ['inbound', inbound, inboundRate],
        ['user', user, userRate],
      ] as const;
      for (const [scope, name, rate] of scopes) {
        for (const direction of ['up', 'down'] as const) {
          const bytesPerSecond = rate?.[direction];
          if (name !== undefined && bytesPerSecond !== undefined)
            held.push(hold(scope, name, direction, bytesPerSecond));
        }
      }
      const charged = (direction: Direction): TokenBucket[] =>
        held.filter((h) => h.direction === direction).map((h) => h.bucket);
      let released = false;
      return {
        rate: held.length === 0 ? undefined : { up: charged('up'), down: charged('down') },
        release() {
          if (released) return;
          released = true;
          for (const h of held) letGo(h);
          if (user === undefined) return;
          const left = (perUser.get(user) ?? 1) - 1;
          if (left > 0) perUser.set(user, left);
          else perUser.delete(user);
        },
      };
    },
    retune(plan) {
      for (const held of buckets.values())
        held.bucket.setRate(rateOf(plan, held.scope, held.name, held.direction));
    },
    sessionsOf(user) {
      return perUser.get(user) ?? 0;
    },
  };
}
