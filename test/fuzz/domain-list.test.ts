import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDomainList } from '../../src/route/domain-list.js';
import { parseHost } from '../../src/target.js';

/**
 * The list format read line by line with strings and parseHost, the slow way: the byte scanner
 * must accept the same lists and match the same names.
 */
function referenceList(text: string): { exact: Set<string>; suffix: Set<string> } | undefined {
  const exact = new Set<string>();
  const suffix = new Set<string>();
  for (const raw of text.replace(/^\uFEFF/, '').split('\n')) {
    const line = (raw.split('#')[0] ?? '').trim();
    if (line === '') continue;
    let body = line;
    let into = suffix;
    if (body.startsWith('full:')) {
      body = body.slice('full:'.length);
      into = exact;
    } else if (body.startsWith('domain:')) {
      body = body.slice('domain:'.length);
    } else {
      body = body.replace(/^\*?\./, '');
    }
    const host = parseHost(body);
    if (host?.kind !== 'domain') return undefined;
    into.add(host.name);
  }
  return { exact, suffix };
}

function referenceMatches(list: { exact: Set<string>; suffix: Set<string> }, name: string) {
  if (list.exact.has(name)) return true;
  for (let at = 0; at >= 0; at = name.indexOf('.', at) + 1 || -1) {
    if (list.suffix.has(name.slice(at))) return true;
  }
  return false;
}

const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,6}$/);
const name = fc.array(label, { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.'));
const line = fc.oneof(
  name,
  name.map((n) => `full:${n}`),
  name.map((n) => `domain:${n}`),
  name.map((n) => `*.${n}`),
  name.map((n) => `.${n}.`),
  fc.tuple(name, fc.constantFrom(' # c', '#', '\t', '\r', ' ')).map(([n, tail]) => n + tail),
  fc.constantFrom('', '# comment', '  ', '127.1', '0x7f.1', '1.2.3.4', '::1', 'full:', '*.'),
  fc.stringMatching(/^[a-z0-9.*:#_ \t-]{0,12}$/),
);

test('the byte scanner accepts what the line-by-line reading accepts, and matches the same', () => {
  fc.assert(
    fc.property(
      fc.array(line, { maxLength: 12 }),
      fc.array(name, { maxLength: 8 }),
      (lines, probes) => {
        const text = lines.join('\n');
        const reference = referenceList(text);
        let table: ReturnType<typeof parseDomainList> | undefined;
        try {
          table = parseDomainList(text);
        } catch {
          table = undefined;
        }
        assert.equal(table !== undefined, reference !== undefined, JSON.stringify(text));
        if (!table || !reference) return;
        const listed = [...reference.exact, ...reference.suffix];
        const names = [
          ...probes,
          ...listed,
          ...listed.map((n) => `x.${n}`),
          ...listed.map((n) => n.slice(n.indexOf('.') + 1)),
        ].map((n) => n.toLowerCase());
        for (const candidate of names) {
          assert.equal(
            table.matches(candidate),
            referenceMatches(reference, candidate),
            `${candidate} in ${JSON.stringify(text)}`,
          );
        }
      },
    ),
    { numRuns: 3000 },
  );
});
