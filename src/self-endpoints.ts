import { isIPv4, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * The sockets junction itself listens on (inbounds and the admin endpoint). A dial to one of them
 * is a forwarding loop: each pass through it would open one more connection to itself until the
 * process runs out of descriptors. Checked on the address actually dialled, whatever
 * `deny_destinations` says, so no spelling of the address (a name, `0.0.0.0`, `127.1`) gets
 * around it.
 */
export interface SelfEndpoints {
  /** True when a connection to ip:port would reach one of junction's own listening sockets. */
  includes(ip: string, port: number): boolean;
  /** Replaces the set; the gateway calls it once its listeners are bound. */
  set(bound: readonly AddressInfo[]): void;
}

/** Wildcard binds: every local address reaches such a listener. */
const WILDCARDS = new Set(['0.0.0.0', '::']);

export function createSelfEndpoints(): SelfEndpoints {
  /** "ip port" of specific binds, and the ports of wildcard binds. */
  let exact = new Set<string>();
  let wildcardPorts = new Set<number>();
  let local = new Set<string>();
  return {
    includes(ip, port) {
      if (exact.size === 0 && wildcardPorts.size === 0) return false;
      const address = canonical(ip);
      if (exact.has(`${address} ${port}`)) return true;
      if (isUnspecified(address) && (exact.size > 0 || wildcardPorts.size > 0)) {
        // Connecting to 0.0.0.0 or :: reaches the local host on Linux: the loopback binds too.
        for (const key of exact) if (key.endsWith(` ${port}`)) return true;
      }
      return wildcardPorts.has(port) && isLocal(address, local);
    },
    set(bound) {
      exact = new Set();
      wildcardPorts = new Set();
      for (const { address, port } of bound) {
        if (WILDCARDS.has(address)) wildcardPorts.add(port);
        else exact.add(`${canonical(address)} ${port}`);
      }
      local = localAddresses();
    },
  };
}

/** `::ffff:127.0.0.1` is the IPv4 address 127.0.0.1 for a dual-stack listener. */
function canonical(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && isIPv4(lower.slice(7)) ? lower.slice(7) : lower;
}

function isUnspecified(ip: string): boolean {
  return WILDCARDS.has(ip) || (isIPv4(ip) && ip.startsWith('0.'));
}

function isLocal(ip: string, local: ReadonlySet<string>): boolean {
  return local.has(ip) || ip === '::1' || ip.startsWith('127.') || isUnspecified(ip);
}

/** The host's interface addresses when the listeners were bound (a wildcard bind covers them). */
function localAddresses(): Set<string> {
  const addresses = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const entry of list ?? []) addresses.add(canonical(entry.address.split('%')[0] ?? ''));
  }
  return addresses;
}
