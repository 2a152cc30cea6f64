import type { InboundConfig } from '../config/schema.js';
import { formatTarget } from '../target.js';
import { createInboundAccess, type InboundAccess } from './access.js';

export interface ReloadWarning {
  readonly inbound: string;
  readonly message: string;
  readonly detail?: Readonly<Record<string, string>>;
}

export interface InboundReload {
  /** The new access of each running inbound, by name; absent: it keeps what it has. */
  readonly access: ReadonlyMap<string, InboundAccess>;
  readonly warnings: readonly ReloadWarning[];
}

/**
 * What a reload does to the running inbounds. Listeners are kept as they are: an inbound takes
 * its users, `allow`, `udp` and `udp_advertise` from the new entry of the same name, while its
 * type and listen address stay until a restart, as do inbounds added to or removed from the
 * configuration; each of those is a warning naming the inbound. Throws (and so refuses the whole
 * reload) when an entry's access cannot be built.
 */
export function planInboundReload(
  running: readonly InboundConfig[],
  next: readonly InboundConfig[],
): InboundReload {
  const access = new Map<string, InboundAccess>();
  const warnings: ReloadWarning[] = [];
  for (const current of running) {
    const entry = next.find((candidate) => candidate.name === current.name);
    if (!entry) {
      warnings.push({
        inbound: current.name,
        message:
          'inbound removed from the configuration: it keeps listening, with its previous users and allow list, until a restart',
      });
      continue;
    }
    if (entry.type !== current.type) {
      warnings.push({
        inbound: current.name,
        message: 'a reload cannot change an inbound type: it stays as started until a restart',
        detail: { type: current.type, configured: entry.type },
      });
    }
    const listen = formatTarget(current.listen);
    if (formatTarget(entry.listen) !== listen) {
      warnings.push({
        inbound: current.name,
        message:
          'a reload cannot move a listener: the inbound keeps its listen address until a restart',
        detail: { listen, configured: formatTarget(entry.listen) },
      });
    }
    access.set(
      current.name,
      createInboundAccess({ ...entry, type: current.type, listen: current.listen }),
    );
  }
  for (const entry of next) {
    if (running.some((current) => current.name === entry.name)) continue;
    warnings.push({
      inbound: entry.name,
      message: 'inbound added to the configuration: it starts listening at the next restart',
      detail: { listen: formatTarget(entry.listen) },
    });
  }
  return { access, warnings };
}
