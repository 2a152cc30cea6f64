import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname, relative } from 'node:path';

/**
 * The interop matrix's raw material: each test that proves a client against an inbound, or an
 * inbound against an upstream, records its outcome as one JSON line in the file named by
 * JUNCTION_MATRIX_OUT (`npm run test:interop` sets it; scripts/interop-matrix.mjs turns the lines
 * into docs/interop.md). Without the variable nothing is written, so a single test file run by
 * hand leaves no trace.
 */

export interface Cell {
  /** The client program and how it was told about the proxy: `curl socks5h://`, `git http.proxy`. */
  readonly client: string;
  /** The inbound type: http, https, socks, mixed. */
  readonly inbound: string;
  /** Whether the client authenticated to the inbound. */
  readonly auth: boolean;
}

/** The protocol a client spoke to junction, in front of an upstream. */
export type InboundProtocol = 'http' | 'https' | 'socks';

type Outcome =
  | (Cell & { readonly ok: boolean })
  | { readonly upstream: string; readonly inbound: InboundProtocol; readonly ok: boolean };

function write(outcome: Outcome): void {
  const file = process.env.JUNCTION_MATRIX_OUT;
  if (!file) return;
  mkdirSync(dirname(file), { recursive: true });
  // The test file that proved it (node --test runs each file as its own process).
  const source = process.argv[1] ? relative(process.cwd(), process.argv[1]) : '';
  // One short write per line with O_APPEND: test files running in parallel never interleave.
  appendFileSync(file, `${JSON.stringify({ ...outcome, source })}\n`);
}

/** Records that each cell works: call it after the test's assertions. */
export function recordCell(...cells: Cell[]): void {
  for (const cell of cells) write({ ...cell, ok: true });
}

/**
 * Records that junction carried traffic to `upstream` (a label: `squid (http://, Basic)`) for
 * clients speaking each of `inbounds` to it: call it after the test's assertions.
 */
export function recordUpstream(upstream: string, ...inbounds: InboundProtocol[]): void {
  for (const inbound of inbounds) write({ upstream, inbound, ok: true });
}

/**
 * Wraps a test body so that its outcome, pass or fail, becomes the cells': a failing test shows
 * as a failing cell, not as a missing one.
 */
export function proves<A extends unknown[]>(
  cells: Cell | readonly Cell[],
  body: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  const list: readonly Cell[] = Array.isArray(cells) ? cells : [cells as Cell];
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (err) {
      for (const cell of list) write({ ...cell, ok: false });
      throw err;
    }
    for (const cell of list) write({ ...cell, ok: true });
  };
}
