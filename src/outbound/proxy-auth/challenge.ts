// RFC 9110 §11.2 (auth-scheme, auth-param, token68), §11.6.1 (WWW-Authenticate, whose list
// syntax Proxy-Authenticate shares, §11.7.1): the challenges of a 401/407, from every field.
//
//   challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//   auth-param = token BWS "=" BWS ( token / quoted-string )
//   token68    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//
// Challenges and their params share the comma as separator: after a comma, `token =` starts a
// param and a bare token starts the next challenge.

export interface Challenge {
  /** The scheme as the proxy spelled it ("Digest"); compare it lower-cased. */
  readonly scheme: string;
  readonly token68: string | undefined;
  /** Param names lower-cased (§11.2: case-insensitive); values unquoted. First one wins. */
  readonly params: ReadonlyMap<string, string>;
}

const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * Every challenge in `fields` (one entry per Proxy-Authenticate field). A field that stops
 * making sense keeps the challenges read before the fault: a proxy's odd extension must not hide
 * the schemes it offers correctly.
 */
export function parseChallenges(fields: readonly string[]): Challenge[] {
  return fields.flatMap((field) => new FieldReader(field).challenges());
}

/**
 * The Proxy-Authenticate fields of a response's raw header pairs, in order: node:http joins
 * repeated fields it does not know, and a challenge list must be read field by field.
 */
export function challengeFields(rawHeaders: readonly string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === 'proxy-authenticate') values.push(rawHeaders[i + 1] ?? '');
  }
  return values;
}

class FieldReader {
  private at = 0;
  private readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  challenges(): Challenge[] {
    const found: Challenge[] = [];
    for (;;) {
      this.skipListSeparators();
      if (this.at >= this.text.length) return found;
      const challenge = this.challenge();
      if (challenge === undefined) return found;
      found.push(challenge);
    }
  }

  /** One challenge from its scheme; undefined (and the rest of the field dropped) on a fault. */
  private challenge(): Challenge | undefined {
    const scheme = this.token();
    if (scheme === undefined) return undefined;
    const params = new Map<string, string>();
    const spaces = this.skipSpaces();
    if (spaces === 0 || this.atEndOfElement())
      return this.endOfChallenge(scheme, undefined, params);
    const token68 = this.token68();
    if (token68 !== undefined) return this.endOfChallenge(scheme, token68, params);
    for (;;) {
      const param = this.param();
      if (param === undefined) return undefined;
      if (!params.has(param[0])) params.set(param[0], param[1]);
      this.skipSpaces();
      if (this.at >= this.text.length) break;
      if (this.text[this.at] !== ',') return undefined;
      // After commas (empty list elements are allowed, §5.6.1.2): a param, or the next challenge.
      const mark = this.at;
      this.skipListSeparators();
      if (this.at >= this.text.length || !this.startsParam()) {
        this.at = mark;
        break;
      }
    }
    return { scheme, token68: undefined, params };
  }

  private endOfChallenge(
    scheme: string,
    token68: string | undefined,
    params: Map<string, string>,
  ): Challenge | undefined {
    this.skipSpaces();
    if (!this.atEndOfElement()) return undefined;
    return { scheme, token68, params };
  }

  /** A token68 only if it is all the challenge holds (followed by a comma or the end). */
  private token68(): string | undefined {
    const start = this.at;
    let end = start;
    while (end < this.text.length && TOKEN68_CHAR.test(this.text[end] ?? '')) end++;
    if (end === start) return undefined;
    while (this.text[end] === '=') end++;
    let after = end;
    while (this.text[after] === ' ' || this.text[after] === '\t') after++;
    if (after < this.text.length && this.text[after] !== ',') return undefined;
    this.at = end;
    return this.text.slice(start, end);
  }

  private startsParam(): boolean {
    const mark = this.at;
    const name = this.token();
    this.skipSpaces();
    const isParam = name !== undefined && this.text[this.at] === '=';
    this.at = mark;
    return isParam;
  }

  private param(): [string, string] | undefined {
    const name = this.token();
    if (name === undefined) return undefined;
    this.skipSpaces();
    if (this.text[this.at] !== '=') return undefined;
    this.at++;
    this.skipSpaces();
    const value = this.text[this.at] === '"' ? this.quotedString() : this.token();
    return value === undefined ? undefined : [name.toLowerCase(), value];
  }

  /** §5.6.4: quoted-pair is "\" followed by any visible char, space or tab. */
  private quotedString(): string | undefined {
    let value = '';
    for (let i = this.at + 1; i < this.text.length; i++) {
      const char = this.text[i] ?? '';
      if (char === '"') {
        this.at = i + 1;
        return value;
      }
      if (char === '\\') {
        i++;
        if (i >= this.text.length) return undefined;
        value += this.text[i] ?? '';
      } else {
        value += char;
      }
    }
    return undefined;
  }

  private token(): string | undefined {
    const start = this.at;
    while (this.at < this.text.length && TCHAR.test(this.text[this.at] ?? '')) this.at++;
    return this.at === start ? undefined : this.text.slice(start, this.at);
  }

  private skipSpaces(): number {
    const start = this.at;
    while (this.text[this.at] === ' ' || this.text[this.at] === '\t') this.at++;
    return this.at - start;
  }

  private skipListSeparators(): void {
    while (
      this.text[this.at] === ',' ||
      this.text[this.at] === ' ' ||
      this.text[this.at] === '\t'
    ) {
      this.at++;
    }
  }

  private atEndOfElement(): boolean {
    return this.at >= this.text.length || this.text[this.at] === ',';
  }
}

/** A param value as a quoted-string (§5.6.4), for the credentials junction sends. */
export function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}
