/**
 * The checks across entries: names unique, chains, fallback groups and rules naming outbounds
 * and inbounds that exist, no outbound reaching itself. They read the document as written, not
 * the schema's output, so they are reported in the same pass as the problems of the entries
 * themselves (a schema that fails on one entry never gets to look across entries).
 */

export const RESERVED_OUTBOUNDS = ['direct', 'reject'] as const;

export interface ReferenceIssue {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

type Entry = Readonly<Record<string, unknown>>;

export function referenceIssues(doc: Readonly<Record<string, unknown>>): ReferenceIssue[] {
  const issues: ReferenceIssue[] = [];
  const inbounds = entries(doc.inbounds);
  const outbounds = entries(doc.outbounds);
  const rules = entries(doc.rules);
  issues.push(...duplicates(inbounds, 'inbounds', 'inbound'));
  issues.push(...duplicates(outbounds, 'outbounds', 'outbound'));

  const outboundNames = new Set<string>(RESERVED_OUTBOUNDS);
  for (const [, o] of outbounds) if (typeof o.name === 'string') outboundNames.add(o.name);
  const inboundNames = new Set<string>();
  for (const [, i] of inbounds) if (typeof i.name === 'string') inboundNames.add(i.name);

  const groups = new Set<unknown>(
    outbounds.filter(([, o]) => o.fallback !== undefined).map(([, o]) => o.name),
  );
  // A PAC outbound picks its proxies per target: there is no fixed hop to chain through.
  const pacs = new Set<unknown>(
    outbounds.filter(([, o]) => o.pac !== undefined).map(([, o]) => o.name),
  );
  for (const [i, o] of outbounds) {
    if ((RESERVED_OUTBOUNDS as readonly unknown[]).includes(o.name)) {
      issues.push({
        path: ['outbounds', i, 'name'],
        message: `"${String(o.name)}" is built in and cannot be redefined`,
      });
    }
    for (const key of ['chain', 'fallback'] as const) {
      for (const { value, path } of listItems(o[key], ['outbounds', i, key])) {
        if (typeof value !== 'string') continue;
        if (!outboundNames.has(value)) {
          issues.push({ path, message: `unknown outbound "${value}"` });
        } else if (key === 'chain' && value === 'reject') {
          issues.push({ path, message: '"reject" cannot be part of a chain' });
        } else if (key === 'chain' && groups.has(value)) {
          issues.push({ path, message: `fallback group "${value}" cannot be part of a chain` });
        } else if (key === 'chain' && pacs.has(value)) {
          issues.push({ path, message: `PAC outbound "${value}" cannot be part of a chain` });
        }
      }
    }
  }
  const cycle = findCycle(outbounds);
  if (cycle) {
    issues.push({
      path: ['outbounds', cycle.index, 'name'],
      message: `outbound "${cycle.path[0] ?? ''}" refers to itself: ${cycle.path.join(' -> ')}`,
    });
  }

  for (const [i, rule] of rules) {
    if (typeof rule.outbound === 'string' && !outboundNames.has(rule.outbound)) {
      issues.push({
        path: ['rules', i, 'outbound'],
        message: `unknown outbound "${rule.outbound}"`,
      });
    }
    for (const { value, path } of listItems(rule.inbound, ['rules', i, 'inbound'])) {
      if (typeof value === 'string' && !inboundNames.has(value)) {
        issues.push({ path, message: `unknown inbound "${value}"` });
      }
    }
  }
  return issues;
}

/** The mappings of a list, with their indexes; anything else is the schema's to report. */
function entries(value: unknown): [number, Entry][] {
  if (!Array.isArray(value)) return [];
  const found: [number, Entry][] = [];
  value.forEach((item: unknown, i) => {
    if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      found.push([i, item as Entry]);
    }
  });
  return found;
}

/** A list key's items and their paths; a key may hold one item, as users write `inbound: lan`. */
function listItems(
  value: unknown,
  path: readonly (string | number)[],
): { value: unknown; path: (string | number)[] }[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return [{ value, path: [...path] }];
  return value.map((item: unknown, j) => ({ value: item, path: [...path, j] }));
}

function duplicates(items: [number, Entry][], key: string, what: string): ReferenceIssue[] {
  const seen = new Set<string>();
  const issues: ReferenceIssue[] = [];
  for (const [i, item] of items) {
    if (typeof item.name !== 'string') continue;
    if (seen.has(item.name)) {
      issues.push({ path: [key, i, 'name'], message: `duplicate ${what} name "${item.name}"` });
    }
    seen.add(item.name);
  }
  return issues;
}

/** A chain or fallback that reaches itself again would recurse forever at dial time. */
function findCycle(outbounds: [number, Entry][]): { index: number; path: string[] } | undefined {
  const members = new Map<string, string[]>();
  for (const [, o] of outbounds) {
    if (typeof o.name !== 'string') continue;
    const names = [...listItems(o.chain, []), ...listItems(o.fallback, [])]
      .map((item) => item.value)
      .filter((name): name is string => typeof name === 'string');
    members.set(o.name, names);
  }
  const visit = (name: string, path: string[]): string[] | undefined => {
    if (path.includes(name)) return [...path, name];
    for (const next of members.get(name) ?? []) {
      const found = visit(next, [...path, name]);
      if (found) return found;
    }
    return undefined;
  };
  for (const [index, o] of outbounds) {
    if (typeof o.name !== 'string') continue;
    const path = visit(o.name, []);
    if (path) return { index, path };
  }
  return undefined;
}
