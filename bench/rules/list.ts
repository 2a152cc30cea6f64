// A synthetic domain list shaped like merged block lists: mostly suffix entries written the ways
// lists in the wild write them (bare, `.x`, `*.x`, some upper case), exact `full:` names, comments
// and blank lines; and a corpus of targets, half of them listed, half not, each with the outcome
// the list must give it.

/** mulberry32: a small seeded generator, so every run measures the same list. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TLDS = ['com', 'net', 'org', 'io', 'co.uk', 'de', 'ru', 'cn', 'info', 'xyz', 'com.br', 'fr'];
const LETTERS = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface Target {
  readonly name: string;
  /** True when the list must match it. */
  readonly listed: boolean;
}

export interface SyntheticList {
  readonly text: string;
  readonly entries: number;
  readonly exactEntries: number;
  readonly corpus: readonly Target[];
}

export interface ListOptions {
  readonly entries: number;
  readonly corpus: number;
  /** Share of entries that are exact names (`full:`), the rest suffixes. */
  readonly exactShare: number;
  /** Write exact entries as bare lines (suffixes), for code that knows no `full:`. */
  readonly legacy: boolean;
}

export function syntheticList(options: ListOptions): SyntheticList {
  const random = seeded(0x5eed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const label = (): string => {
    const length = 3 + Math.floor(random() * 10);
    let text = '';
    for (let i = 0; i < length; i++) text += LETTERS.charAt(Math.floor(random() * LETTERS.length));
    return text;
  };
  const name = (): string => {
    const labels = 1 + Math.floor(random() * 3);
    const parts: string[] = [];
    for (let i = 0; i < labels; i++) parts.push(label());
    return `${parts.join('.')}.${pick(TLDS)}`;
  };

  const suffixes = new Set<string>();
  const exacts = new Set<string>();
  const lines: string[] = ['# synthetic block list', ''];
  while (suffixes.size + exacts.size < options.entries) {
    const entry = name();
    if (suffixes.has(entry) || exacts.has(entry)) continue;
    if (lines.length % 1000 === 0) lines.push(`# section ${lines.length}`, '');
    if (random() < options.exactShare) {
      exacts.add(entry);
      lines.push(options.legacy ? entry : `full:${entry}`);
      continue;
    }
    suffixes.add(entry);
    const style = random();
    if (style < 0.1) lines.push(`.${entry}`);
    else if (style < 0.2) lines.push(`*.${entry}`);
    else if (style < 0.25) lines.push(entry.toUpperCase());
    else if (style < 0.27) lines.push(`${entry}  # seen in the wild`);
    else lines.push(entry);
  }

  const listed = (host: string): boolean => {
    if (exacts.has(host) && !options.legacy) return true;
    for (let dot = -1; ;) {
      const candidate = host.slice(dot + 1);
      if (suffixes.has(candidate) || (options.legacy && exacts.has(candidate))) return true;
      dot = host.indexOf('.', dot + 1);
      if (dot < 0) return false;
    }
  };
  const suffixList = [...suffixes];
  const exactList = [...exacts];
  const corpus: Target[] = [];
  while (corpus.length < options.corpus) {
    const hit = corpus.length % 2 === 0;
    const kind = random();
    let host: string;
    if (hit) {
      if (kind < 0.3 && exactList.length > 0) host = pick(exactList);
      else if (kind < 0.5) host = pick(suffixList);
      else host = `${label()}.${pick(suffixList)}`;
    } else if (kind < 0.6) {
      host = name();
    } else if (kind < 0.8 && exactList.length > 0) {
      // A subdomain of an exact entry: listed only where exact entries are suffixes.
      host = `${label()}.${pick(exactList)}`;
    } else {
      // Shares the entry's text but not at a label boundary.
      host = `x${pick(suffixList)}`;
    }
    const expected = listed(host);
    if (expected !== hit) continue;
    corpus.push({ name: host, listed: expected });
  }
  return {
    text: lines.join('\n') + '\n',
    entries: suffixes.size + exacts.size,
    exactEntries: exacts.size,
    corpus,
  };
}
