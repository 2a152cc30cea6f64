import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { parseHost } from '../target.js';
import {
  DomainTableBuilder,
  EXACT,
  SUFFIX,
  type DomainTable,
  type EntryKind,
} from './domain-table.js';

/**
 * A domain list file, one entry a line:
 *
 *   example.com          example.com and every name under it (also written `.example.com`,
 *   *.example.com        `*.example.com` or `domain:example.com`, as lists in the wild do)
 *   full:www.example.com that name only
 *
 * Blank lines and `#` comments are ignored; names are case-insensitive and may end with one dot.
 * `full:` and `domain:` are the v2fly domain-list-community spellings, where a bare name is a
 * suffix too, so lists written before exact entries existed keep their meaning.
 *
 * Lists run to millions of lines, so the file is scanned as bytes, with no string per line:
 * each name is checked and copied straight into the table.
 */

/** A list with bad lines: the first one, and how many more there are. */
export class DomainListError extends Error {
  override readonly name = 'DomainListError';
}

const NEWLINE = 0x0a;
const HASH = 0x23;
const DOT = 0x2e;
const STAR = 0x2a;
const HYPHEN = 0x2d;
const MAX_NAME = 255;
const LINES_PER_STEP = 1024;
const COUNT_STEP = 1 << 20;
const FULL = Buffer.from('full:');
const DOMAIN = Buffer.from('domain:');
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

const isSpace = (c: number): boolean => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
/** What may begin or end a label: letters (either case), digits, underscore. */
const isLabelEdge = (c: number): boolean =>
  isDigit(c) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f;

function startsWith(bytes: Uint8Array, at: number, end: number, prefix: Uint8Array): boolean {
  if (end - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[at + i] !== prefix[i]) return false;
  return true;
}

/**
 * What parseHost accepts as a domain name, on bytes: labels of letters, digits, `_` and inner
 * `-`. The rare name whose last label starts with a digit may be an IPv4 address in inet_aton's
 * spellings (`127.1`, `0x7f.1`): parseHost itself decides those.
 */
function isDomainName(bytes: Uint8Array, start: number, end: number): boolean {
  const length = end - start;
  if (length === 0 || length > MAX_NAME) return false;
  let labelStart = start;
  let onlyDigits = true;
  for (let i = start; i <= end; i++) {
    const c = i < end ? (bytes[i] ?? 0) : DOT;
    if (c === DOT) {
      if (i === labelStart) return false;
      if (!isLabelEdge(bytes[labelStart] ?? 0) || !isLabelEdge(bytes[i - 1] ?? 0)) return false;
      labelStart = i + 1;
    } else if (c !== HYPHEN && !isLabelEdge(c)) {
      return false;
    } else if (!isDigit(c)) {
      onlyDigits = false;
    }
  }
  if (onlyDigits) return false;
  let lastLabel = end - 1;
  while (lastLabel > start && bytes[lastLabel - 1] !== DOT) lastLabel--;
  if (!isDigit(bytes[lastLabel] ?? 0)) return true;
  return (
    parseHost(Buffer.from(bytes.buffer, bytes.byteOffset + start, length).toString('latin1'))
      ?.kind === 'domain'
  );
}

/** Where a walk over the lines is. */
interface Scan {
  pos: number;
  line: number;
  bad: number;
  firstBad: string | undefined;
}

/** Adds the entries of up to `lines` lines from `scan.pos` to `table`, and notes bad lines. */
function scanLines(bytes: Uint8Array, table: DomainTableBuilder, scan: Scan, lines: number): void {
  const length = bytes.length;
  let pos = scan.pos;
  let line = scan.line;
  for (let n = 0; n < lines && pos < length; n++) {
    line++;
    let end = pos;
    let comment = -1;
    for (; end < length; end++) {
      const c = bytes[end];
      if (c === NEWLINE) break;
      if (c === HASH && comment < 0) comment = end;
    }
    let start = pos;
    pos = end + 1;
    if (comment >= 0) end = comment;
    while (start < end && isSpace(bytes[start] ?? 0)) start++;
    while (end > start && isSpace(bytes[end - 1] ?? 0)) end--;
    if (start === end) continue;
    let name = start;
    let kind: EntryKind = SUFFIX;
    if (startsWith(bytes, start, end, FULL)) {
      kind = EXACT;
      name += FULL.length;
    } else if (startsWith(bytes, start, end, DOMAIN)) {
      name += DOMAIN.length;
    } else if (bytes[start] === STAR && bytes[start + 1] === DOT) {
      name += 2;
    } else if (bytes[start] === DOT) {
      name += 1;
    }
    const nameEnd = end > name && bytes[end - 1] === DOT ? end - 1 : end;
    if (isDomainName(bytes, name, nameEnd)) {
      table.add(bytes, name, nameEnd, kind);
      continue;
    }
    scan.bad++;
    scan.firstBad ??= `line ${line}: ${problemOf(bytes, start, end)}`;
  }
  scan.pos = pos;
  scan.line = line;
}

function countLines(bytes: Uint8Array, from: number, to: number): number {
  let lines = 0;
  for (let i = from; i < to; i++) if (bytes[i] === NEWLINE) lines++;
  return lines;
}

/**
 * The walk over a list, in steps of about a millisecond: the loader that must not stall the
 * event loop yields between them, the one that may runs them back to back.
 */
function* build(bytes: Uint8Array): Generator<void, DomainTable> {
  let lines = 1;
  for (let at = 0; at < bytes.length; at += COUNT_STEP) {
    lines += countLines(bytes, at, Math.min(at + COUNT_STEP, bytes.length));
    yield;
  }
  const table = new DomainTableBuilder(lines, bytes.length);
  yield* table.prepare();
  const scan: Scan = {
    pos: startsWith(bytes, 0, bytes.length, BOM) ? BOM.length : 0,
    line: 0,
    bad: 0,
    firstBad: undefined,
  };
  while (scan.pos < bytes.length) {
    scanLines(bytes, table, scan, LINES_PER_STEP);
    yield;
  }
  if (scan.firstBad !== undefined) {
    const more =
      scan.bad > 1 ? ` (and ${scan.bad - 1} more bad line${scan.bad > 2 ? 's' : ''})` : '';
    throw new DomainListError(`${scan.firstBad}${more}`);
  }
  return yield* table.finish();
}

function problemOf(bytes: Uint8Array, start: number, end: number): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8');
  const prefix = /^([a-z]+):/i.exec(text)?.[1];
  if (prefix !== undefined && !/^(full|domain)$/.test(prefix)) {
    return `unknown entry type "${prefix}:" in "${text}" (a list holds names, full: and domain: entries)`;
  }
  return `bad domain "${text}"`;
}

const asBytes = (text: string | Uint8Array): Uint8Array =>
  typeof text === 'string' ? Buffer.from(text, 'utf8') : text;

/** Parses a whole list at once; throws DomainListError on bad lines. */
export function parseDomainList(text: string | Uint8Array): DomainTable {
  const walk = build(asBytes(text));
  for (;;) {
    const next = walk.next();
    if (next.done) return next.value;
  }
}

/**
 * Parses a list in slices of about `sliceMs`, letting the event loop run between them, so a
 * reload does not stall the sessions being served.
 */
export async function parseDomainListInSlices(
  text: string | Uint8Array,
  sliceMs = 3,
): Promise<DomainTable> {
  const walk = build(asBytes(text));
  let sliceEnd = performance.now() + sliceMs;
  for (;;) {
    const next = walk.next();
    if (next.done) return next.value;
    if (performance.now() >= sliceEnd) {
      await nextTurn();
      sliceEnd = performance.now() + sliceMs;
    }
  }
}

export function readDomainList(path: string): DomainTable {
  return parseDomainList(readFileSync(path));
}

/** As readDomainList, reading the file off the event loop and parsing it in slices. */
export async function readDomainListInSlices(path: string): Promise<DomainTable> {
  return parseDomainListInSlices(await readFile(path));
}
