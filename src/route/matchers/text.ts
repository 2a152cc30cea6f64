// Plain YAML scalars may not contain flow indicators, comment marks or spaces, nor start with
// characters YAML gives a meaning to; anything else is printed quoted so the text stays valid YAML.
const PLAIN_SCALAR = /^[^\s,[\]{}#&*!|>'"%@`?-][^\s,[\]{}#]*$/;

export function scalarText(item: string | number): string {
  if (typeof item === 'number') return String(item);
  return PLAIN_SCALAR.test(item) ? item : JSON.stringify(item);
}

/** `key: [a, b]`, the compact flow form `junction route` prints. */
export function listText(key: string, items: readonly (string | number)[]): string {
  return `${key}: [${items.map(scalarText).join(', ')}]`;
}
