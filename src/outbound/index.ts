import type { OutboundConfig } from '../config/schema.js';
import { parseOutboundUrl, type ProxyUrl } from '../config/url.js';
import type { Logger } from '../log.js';
import type { DestinationPolicy } from '../policy.js';
import { hostToString } from '../target.js';
import { createChainOutbound } from './chain.js';
import { createDirectOutbound } from './direct.js';
import { createFallbackOutbound, type MemberStateSink } from './fallback.js';
import { startHealthChecker, targetOf } from './health-check.js';
import { createHttpHop } from './http-hop.js';
import type { KerberosSupport } from './proxy-auth/kerberos.js';
import { sendingProxyHeader } from './proxy-header.js';
import type { SchemePolicy } from './proxy-auth/negotiate-schemes.js';
import { SCHEME_NAMES } from './proxy-auth/types.js';
import { createPacOutbound } from './pac/outbound.js';
import type { PacSource } from './pac/source.js';
import { createRejectOutbound } from './reject.js';
import { createSocksHop } from './socks-hop.js';
import type { Hop, Outbound } from './types.js';
import { createDirectUdp } from './udp-direct.js';
import { createRejectUdp } from './udp-reject.js';
import { createSocks5Udp } from './udp-socks5.js';
import type { UdpOutbound } from './udp-types.js';

export interface OutboundOptions {
  /**
   * Where health checkers log. Checkers (timers) run only when this is given: the gateway gives
   * it, a bare build (`junction check`, unit tests) starts nothing in the background.
   */
  readonly log?: Logger | undefined;
  /** Receives fallback members' up/down state. */
  readonly metrics?: MemberStateSink | undefined;
  /** The Kerberos binding for Negotiate, once loaded (prepareKerberos); none: no Negotiate. */
  readonly kerberos?: KerberosSupport | undefined;
}

/** A fallback group without `check`: a member marked down is tried again after this long. */
const DEFAULT_RETRY_MS = 30_000;
/** A fallback group without `check`: how long an attempt may take before the next member. */
const DEFAULT_ATTEMPT_MS = 5_000;
/** How often a PAC file is read again without `interval`. */
export const DEFAULT_PAC_INTERVAL_MS = 600_000;

/**
 * Builds every outbound of a configuration, plus the built-in `direct` and `reject`, each with
 * its UDP side when it has one. A `url:` outbound is a chain of one hop; a chain's members are
 * flattened into its hops (`direct` adds none); a `pac:` outbound builds its hops per answer of
 * its PAC file, and carries no UDP. A fallback group is built over its members'
 * outbounds (any kind, another group too), which are built first; a fallback group cannot be
 * part of a chain.
 */
export function createOutbounds(
  configs: readonly OutboundConfig[],
  policy: DestinationPolicy,
  options: OutboundOptions = {},
): Map<string, Outbound> {
  const builtIn = new Map<string, Outbound>([
    ['direct', { ...createDirectOutbound(policy), udp: createDirectUdp(policy) }],
    ['reject', { ...createRejectOutbound(), udp: createRejectUdp() }],
  ]);
  const byName = new Map(configs.map((config) => [config.name, config]));
  const hopsByName = new Map<string, readonly Hop[]>();
  // The schema has already refused unknown names and cycles.
  const hopsOf = (name: string, usedBy: string): readonly Hop[] => {
    if (name === 'direct') return [];
    const known = hopsByName.get(name);
    if (known) return known;
    const config = byName.get(name);
    if (!config || name === 'reject') {
      throw new Error(`outbound "${usedBy}": "${name}" cannot be part of a chain`);
    }
    let hops: readonly Hop[];
    if (config.url !== undefined) hops = [createHop(config, config.url, policy, options.kerberos)];
    else if (config.chain) hops = config.chain.flatMap((member) => hopsOf(member, name));
    else {
      const what = config.pac === undefined ? 'fallback group' : 'PAC outbound';
      throw new Error(`outbound "${usedBy}": ${what} "${name}" cannot be part of a chain`);
    }
    hopsByName.set(name, hops);
    return hops;
  };
  const built = new Map<string, Outbound>();
  const outboundOf = (name: string): Outbound => {
    const known = builtIn.get(name) ?? built.get(name);
    if (known) return known;
    const config = byName.get(name);
    if (!config) throw new Error(`unknown outbound "${name}"`);
    const outbound = config.fallback
      ? createGroup(config, config.fallback.map(outboundOf), options)
      : config.pac
        ? createPac(config, config.pac, policy, options)
        : createChain(config, hopsOf(config.name, config.name), policy);
    built.set(name, outbound);
    return outbound;
  };
  const outbounds = new Map(builtIn);
  try {
    for (const config of configs) outbounds.set(config.name, outboundOf(config.name));
  } catch (err) {
    for (const outbound of built.values()) outbound.close?.();
    throw err;
  }
  return outbounds;
}

/** Stops every outbound's background work (health checkers) of a runtime being dropped. */
export function closeOutbounds(outbounds: ReadonlyMap<string, Outbound>): void {
  for (const outbound of outbounds.values()) outbound.close?.();
}

/** A chain of hops, and its UDP side when it has one. */
function createChain(
  { name, send_proxy_protocol: version }: OutboundConfig,
  hops: readonly Hop[],
  policy: DestinationPolicy,
): Outbound {
  const plain = createChainOutbound(name, hops, policy);
  const chain = version === undefined ? plain : sendingProxyHeader(plain, version);
  const udp = chainUdp(hops, policy);
  return udp ? { ...chain, udp } : chain;
}

/**
 * A chain that flattens to no proxy is direct, to one SOCKS5 proxy is that proxy's UDP relay.
 * A longer chain carries no UDP: a datagram cannot be tunnelled through the first proxy's TCP
 * stream to reach the next one's relay. http, https and SOCKS4 proxies have no UDP at all.
 */
function chainUdp(hops: readonly Hop[], policy: DestinationPolicy): UdpOutbound | undefined {
  if (hops.length === 0) return createDirectUdp(policy);
  return hops.length === 1 ? hops[0]?.udp : undefined;
}

/**
 * A fallback group carries no UDP: its health state is about TCP, and sending datagrams to a
 * member other than the one TCP would use could bypass the proxy the group prefers
 * (`fallback: [corp, direct]` would send all UDP direct).
 */
function createGroup(
  config: OutboundConfig,
  members: readonly Outbound[],
  options: OutboundOptions,
): Outbound {
  const { check } = config;
  if (check?.tcp !== undefined && !parseable(check.tcp)) {
    throw new Error(`outbound "${config.name}": check.tcp must be host:port, not "${check.tcp}"`);
  }
  if (check?.url !== undefined && !/^https?:$/.test(new URL(check.url).protocol)) {
    throw new Error(`outbound "${config.name}": check.url must be http:// or https://`);
  }
  const probes = check !== undefined && (check.url !== undefined || check.tcp !== undefined);
  const group = createFallbackOutbound(config.name, members, {
    attemptTimeoutMs: check?.timeout ?? DEFAULT_ATTEMPT_MS,
    retryAfterMs: check?.interval ?? DEFAULT_RETRY_MS,
    checked: probes && options.log !== undefined,
    metrics: options.metrics,
  });
  if (!probes || !options.log) return group;
  const checker = startHealthChecker(group, check, options.log.child({ group: config.name }));
  const closeGroup = group.close?.bind(group);
  return Object.assign(group, {
    close() {
      checker.close();
      closeGroup?.();
    },
  });
}

function parseable(text: string): boolean {
  try {
    targetOf(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * A PAC outbound: each proxy its PAC file names is a hop with the outbound's user, password,
 * tls and auth. A PAC answer with several entries is tried in order, with the timings of a
 * fallback group without `check`.
 */
function createPac(
  config: OutboundConfig,
  source: PacSource,
  policy: DestinationPolicy,
  options: OutboundOptions,
): Outbound {
  return createPacOutbound({
    name: config.name,
    source,
    intervalMs: config.interval ?? DEFAULT_PAC_INTERVAL_MS,
    policy,
    hopOf: (entry) =>
      proxyHop(
        config,
        {
          scheme: entry.scheme,
          host: entry.server.host,
          port: entry.server.port,
          username: config.user,
          password: config.user === undefined ? undefined : config.password,
        },
        policy,
        options.kerberos,
      ),
    fallback: { attemptTimeoutMs: DEFAULT_ATTEMPT_MS, retryAfterMs: DEFAULT_RETRY_MS },
    log: options.log,
  });
}

function createHop(
  config: OutboundConfig,
  url: string,
  policy: DestinationPolicy,
  kerberos: KerberosSupport | undefined,
): Hop {
  const { name, password } = config;
  const parsed = parseOutboundUrl(url);
  // Validated by the schema; a failure here would be a bug.
  if (parsed.error !== undefined) throw new Error(`outbound "${name}": ${parsed.error}`);
  // password_env / password_file complete the URL's user (the schema read them).
  return proxyHop(
    config,
    password === undefined ? parsed.value : { ...parsed.value, password },
    policy,
    kerberos,
  );
}

/**
 * A hop is labelled with its outbound's name: its errors reach clients (an HTTP 502 body), and
 * a client is told which proxy failed and how, never where it is or with which credentials.
 */
function proxyHop(
  config: OutboundConfig,
  proxy: ProxyUrl<string>,
  policy: DestinationPolicy,
  kerberos: KerberosSupport | undefined,
): Hop {
  const { name, tls, auth } = config;
  const label = `"${name}"`;
  if (isHttp(proxy)) {
    return createHttpHop(
      proxy,
      label,
      {
        ca: tls?.ca,
        servername: tls?.servername,
        insecure: tls?.insecure,
      },
      schemePolicy(auth, proxy, kerberos),
    );
  }
  const socks = proxy as ProxyUrl<'socks4' | 'socks4a' | 'socks5' | 'socks5h'>;
  const hop = createSocksHop(socks, label);
  if (!isSocks5(socks)) return hop;
  return { ...hop, udp: createSocks5Udp(socks, label, policy) };
}

/**
 * Pre-emptive Basic is the default for a URL with a user, as long as Basic may be used.
 * Negotiate asks for a ticket to `HTTP@<proxy host>` unless `spn` names another service.
 */
function schemePolicy(
  auth: OutboundConfig['auth'],
  proxy: ProxyUrl<'http' | 'https'>,
  kerberos: KerberosSupport | undefined,
): SchemePolicy {
  const schemes = auth?.schemes ?? SCHEME_NAMES;
  const hasUser = proxy.username !== undefined;
  const preemptive = auth?.preemptive ?? (hasUser && schemes.includes('basic') ? 'basic' : 'none');
  return {
    schemes,
    preemptiveBasic: preemptive === 'basic',
    domain: auth?.domain,
    workstation: auth?.workstation,
    kerberos: kerberos && {
      support: kerberos,
      spn: auth?.spn ?? `HTTP@${hostToString(proxy.host)}`,
    },
  };
}

function isSocks5(proxy: ProxyUrl<string>): proxy is ProxyUrl<'socks5' | 'socks5h'> {
  return proxy.scheme === 'socks5' || proxy.scheme === 'socks5h';
}

function isHttp(proxy: ProxyUrl<string>): proxy is ProxyUrl<'http' | 'https'> {
  return proxy.scheme === 'http' || proxy.scheme === 'https';
}
