import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import type { z } from 'zod';
import { referenceIssues } from './references.js';
import { readDomainListInSlices } from '../route/domain-list.js';
import { configSchema, type Config } from './schema.js';

export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/** Every problem of a configuration, each as FILE:LINE:COL: message. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/** Changes the parsed YAML before validation: the CLI's -L and -F add to a file's config. */
export type Amend = (raw: Record<string, unknown>) => void;

export function loadConfigFile(file: string, amend?: Amend): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
  return loadConfigText(text, file, dirname(resolve(file)), amend);
}

/**
 * As loadConfigFile, for a reload: files are read off the event loop and domain lists are built
 * in slices, so a list of millions of entries does not stall the sessions being served.
 */
export async function loadConfigFileInSlices(file: string, amend?: Amend): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw unreadable(file, err);
  }
  const source = parseSource(text, file, amend);
  const schema = configSchema(dirname(resolve(file)), readDomainListInSlices);
  return validated(source, await schema.safeParseAsync(source.data));
}

function unreadable(file: string, err: unknown): ConfigError {
  const reason =
    (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
  return new ConfigError([{ file, line: 1, col: 1, message: `cannot read config: ${reason}` }]);
}

export function loadConfigText(text: string, file: string, baseDir: string, amend?: Amend): Config {
  const source = parseSource(text, file, amend);
  return validated(source, configSchema(baseDir).safeParse(source.data));
}

/** A configuration's YAML, parsed and amended, with what maps a path back to its position. */
interface Source {
  readonly doc: Document;
  readonly at: At;
  readonly data: Record<string, unknown>;
}

function parseSource(text: string, file: string, amend: Amend | undefined): Source {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number, message: string): ConfigProblem => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, col, message };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((e) => at(e.pos[0], yamlMessage(e.code, e.message))));
  }
  const js: unknown = doc.toJS();
  if (js !== null && js !== undefined && (typeof js !== 'object' || Array.isArray(js))) {
    throw new ConfigError([
      at(0, 'the configuration must be a mapping of keys (log, limits, inbounds, ...)'),
    ]);
  }
  const data = (js ?? {}) as Record<string, unknown>;
  amend?.(data);
  return { doc, at, data };
}

function validated({ doc, at, data }: Source, result: z.ZodSafeParseResult<Config>): Config {
  // Both always run, so one pass reports every problem of the file.
  const references = referenceIssues(data);
  if (result.success && references.length === 0) return result.data;
  const problems = [
    ...(result.success
      ? []
      : result.error.issues.flatMap((issue) => issueProblems(issue, doc, at))),
    ...references.map(({ path, message }) => problemAt(doc, path, message, at)),
  ];
  problems.sort((a, b) => a.line - b.line || a.col - b.col);
  throw new ConfigError(problems);
}

function yamlMessage(code: string, message: string): string {
  if (code === 'DUPLICATE_KEY') return 'duplicate key';
  return message.split('\n')[0] ?? message;
}

type At = (offset: number, message: string) => ConfigProblem;

function issueProblems(issue: z.core.$ZodIssue, doc: Document, at: At): ConfigProblem[] {
  const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  const where = path.length > 0 ? `${path.join('.')}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    const map = nodeAt(doc, path).node;
    return issue.keys.map((key) => {
      const keyNode = isMap(map)
        ? map.items.find((p) => isScalar(p.key) && p.key.value === key)?.key
        : undefined;
      const offset = isScalar(keyNode) ? (keyNode.range?.[0] ?? 0) : offsetOf(map);
      return at(offset, `${where}unknown key "${key}"`);
    });
  }
  const { node, complete } = nodeAt(doc, path);
  return [at(offsetOf(node), `${where}${issueMessage(issue, complete)}`)];
}

function problemAt(
  doc: Document,
  path: readonly (string | number)[],
  message: string,
  at: At,
): ConfigProblem {
  return at(offsetOf(nodeAt(doc, path).node), `${path.join('.')}: ${message}`);
}

function issueMessage(issue: z.core.$ZodIssue, present: boolean): string {
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  if (issue.code === 'invalid_type' && issue.message.startsWith('Invalid input')) {
    return present ? `expected ${issue.expected}` : 'required';
  }
  return issue.message;
}

/**
 * The deepest YAML node that exists along `path` (a list key may hold a single scalar, and a
 * missing key has no node), and whether the whole path was found.
 */
function nodeAt(
  doc: Document,
  path: readonly PropertyKey[],
): { node: Node | null; complete: boolean } {
  let node: unknown = doc.contents;
  for (const key of path) {
    const child: unknown = isMap(node) || isSeq(node) ? node.get(key, true) : undefined;
    if (child === undefined || child === null)
      return { node: node as Node | null, complete: false };
    node = child;
  }
  return { node: (node as Node | null) ?? null, complete: true };
}

function offsetOf(node: Node | null): number {
  return node?.range?.[0] ?? 0;
}
