import { lookup } from 'node:dns/promises';
import type { RuleConfig } from '../config/schema.js';
import type { Resolver, RouteDecision, RouteInput, Router } from './types.js';
import { compileRule } from './rule.js';

const NO_MATCH: RouteDecision = { rule: undefined, outbound: 'direct' };

/** Stops waiting when `signal` aborts; getaddrinfo itself cannot be cancelled. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}

/** The system resolver (hosts file, nsswitch), as the direct outbound would use to dial. */
const systemResolver: Resolver = async (name, signal) => {
  signal?.throwIfAborted();
  const answers = lookup(name, { all: true });
  const addresses = signal ? await untilAborted(answers, signal) : await answers;
  return addresses.map((answer) => answer.address);
};

/** A name that does not resolve has no addresses, so no ip_cidr matches it; routing goes on. */
async function resolveOrNothing(
  resolve: Resolver,
  name: string,
  signal: AbortSignal | undefined,
): Promise<readonly string[]> {
  try {
    return await resolve(name, signal);
  } catch {
    // An abort is the caller giving up, not a DNS answer: let it through.
    signal?.throwIfAborted();
    return [];
  }
}

/**
 * Targets come normalised from parseHost; this keeps rules right for hand-built targets too,
 * once per decision rather than once per rule.
 */
function normalised(input: RouteInput): RouteInput {
  const host = input.target.host;
  if (host.kind !== 'domain') return input;
  const lower = host.name.toLowerCase();
  const name = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (name === host.name) return input;
  return { ...input, target: { ...input.target, host: { kind: 'domain', name } } };
}

/** Compiles `rules:` once; `decide` walks them in order and the first match wins. */
export function createRouter(
  configs: readonly RuleConfig[],
  resolve: Resolver = systemResolver,
): Router {
  const rules = configs.map((config, index) => compileRule(config, index));
  return {
    rules,
    async decide(given, abort) {
      const input = normalised(given);
      const host = input.target.host;
      const name = host.kind === 'domain' ? host.name : undefined;
      // One lookup per decision at most, and only once a resolve rule cannot be decided without it.
      let addresses: Promise<readonly string[]> | undefined;
      for (const rule of rules) {
        let matched: boolean;
        if (name !== undefined && rule.needsAddresses(input)) {
          addresses ??= resolveOrNothing(resolve, name, abort?.signal);
          matched = rule.matches(input, await addresses);
        } else {
          matched = rule.matches(input, undefined);
        }
        if (matched) return { rule, outbound: rule.outbound };
      }
      return NO_MATCH;
    },
  };
}
