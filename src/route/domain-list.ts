import { parseHost } from '../target.js';

/**
 * A domain list file: one domain a line, each matching itself and its subdomains (as
 * `domain_suffix`); blank lines and `#` comments ignored; a leading `*.` or `.` is accepted
 * and means the same, since block lists in the wild are written all three ways.
 */
export function parseDomainList(text: string): string[] {
  const entries: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = (raw.split('#')[0] ?? '').trim();
    if (line === '') return;
    const bare = line.replace(/^\*?\./, '');
    const host = parseHost(bare);
    if (host?.kind !== 'domain') throw new Error(`line ${index + 1}: bad domain "${line}"`);
    entries.push(host.name);
  });
  return entries;
}
