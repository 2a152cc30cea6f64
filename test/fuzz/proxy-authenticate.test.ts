import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseChallenges, quoted } from '../../src/outbound/proxy-auth/challenge.js';

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const TOKEN68_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/';

const token = fc
  .array(fc.constantFrom(...Array.from(TCHARS)), { minLength: 1, maxLength: 12 })
  .map((chars) => chars.join(''));
const token68 = fc
  .tuple(
    fc.array(fc.constantFrom(...Array.from(TOKEN68_CHARS)), { minLength: 1, maxLength: 40 }),
    fc.integer({ min: 0, max: 2 }),
  )
  .map(([chars, pad]) => chars.join('') + '='.repeat(pad));
/** Any visible ASCII, space and tab, as a quoted-string may hold (quotes and backslashes too). */
const quotedText = fc
  .array(
    fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    {
      maxLength: 30,
    },
  )
  .map((chars) => chars.join(''));
const space = fc.constantFrom('', ' ', '  ', '\t');

interface Model {
  scheme: string;
  token68: string | undefined;
  params: readonly (readonly [string, string])[];
}

const challengeModel: fc.Arbitrary<Model> = fc.oneof(
  fc.record({ scheme: token, token68: fc.constant(undefined), params: fc.constant([]) }),
  fc.record({ scheme: token, token68, params: fc.constant([]) }),
  fc.record({
    scheme: token,
    token68: fc.constant(undefined),
    params: fc.uniqueArray(fc.tuple(token, fc.oneof(token, quotedText)), {
      minLength: 1,
      maxLength: 5,
      selector: ([name]) => name.toLowerCase(),
    }),
  }),
);

function write(model: Model, pads: readonly string[]): string {
  const pad = (i: number): string => pads[i % pads.length] ?? '';
  if (model.token68 !== undefined) return `${model.scheme} ${model.token68}`;
  if (model.params.length === 0) return model.scheme;
  const params = model.params.map(
    ([name, value], i) =>
      `${name}${pad(i)}=${pad(i + 1)}${/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value) ? value : quoted(value)}`,
  );
  return `${model.scheme} ${params.join(`${pad(0)},${pad(1)}`)}`;
}

test('Proxy-Authenticate: challenges written by RFC 9110 §11 read back unchanged', () => {
  fc.assert(
    fc.property(
      fc.array(fc.array(challengeModel, { minLength: 1, maxLength: 4 }), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.array(space, { minLength: 1, maxLength: 4 }),
      (fields, pads) => {
        const text = fields.map((field) => field.map((c) => write(c, pads)).join(', '));
        const parsed = parseChallenges(text);
        const expected = fields.flat().map((c) => ({
          scheme: c.scheme,
          token68: c.token68,
          params: Object.fromEntries(c.params.map(([n, v]) => [n.toLowerCase(), v])),
        }));
        assert.deepEqual(
          parsed.map((c) => ({
            scheme: c.scheme,
            token68: c.token68,
            params: Object.fromEntries(c.params),
          })),
          expected,
        );
      },
    ),
    { numRuns: 3000 },
  );
});

test('Proxy-Authenticate: any text is parsed without throwing, into well-formed challenges', () => {
  const hostile = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc
      .array(fc.constantFrom('Digest', 'Basic', ' ', ',', '=', '"', '\\', 'a', 'realm', '\t'), {
        maxLength: 40,
      })
      .map((parts) => parts.join('')),
  );
  fc.assert(
    fc.property(fc.array(hostile, { maxLength: 3 }), (fields) => {
      for (const challenge of parseChallenges(fields)) {
        assert.match(challenge.scheme, /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/);
        assert.ok(challenge.token68 === undefined || challenge.params.size === 0);
      }
    }),
    { numRuns: 3000 },
  );
});
