import { open } from 'node:fs/promises';

/** Where a PAC file comes from: an http(s) URL, or a file (an absolute path). */
export type PacSource = { readonly url: string } | { readonly file: string };

/** Larger than any real PAC file; a bigger answer is refused, not truncated. */
export const MAX_PAC_BYTES = 1024 * 1024;
export const FETCH_LIMIT_MS = 10_000;

/** For logs and errors: a URL without its query, which may carry a token. */
export function describeSource(source: PacSource): string {
  if (!('url' in source)) return source.file;
  const { origin, pathname } = new URL(source.url);
  return `${origin}${pathname}`;
}

/**
 * The PAC file's text. A URL is fetched directly (never through an outbound: the PAC says which
 * proxies to use), following redirects, within FETCH_LIMIT_MS; only a 200 is a PAC file.
 * Rejects with an Error whose message says what failed, for a log line.
 */
export async function readPacSource(source: PacSource): Promise<string> {
  return 'url' in source ? fetchPac(source.url) : readPacFile(source.file);
}

async function fetchPac(url: string): Promise<string> {
  const shown = describeSource({ url });
  const signal = AbortSignal.timeout(FETCH_LIMIT_MS);
  let response: Response;
  try {
    response = await fetch(url, {
      signal,
      headers: { accept: 'application/x-ns-proxy-autoconfig, */*' },
    });
  } catch (err) {
    throw new Error(`cannot fetch ${shown}: ${reason(err, signal)}`, { cause: err });
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw new Error(`cannot fetch ${shown}: HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > MAX_PAC_BYTES) {
    await response.body?.cancel();
    throw new Error(`cannot fetch ${shown}: larger than ${MAX_PAC_BYTES} bytes`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > MAX_PAC_BYTES) {
        await response.body?.cancel();
        throw new Error(`larger than ${MAX_PAC_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
  } catch (err) {
    throw new Error(`cannot fetch ${shown}: ${reason(err, signal)}`, { cause: err });
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readPacFile(path: string): Promise<string> {
  try {
    const file = await open(path);
    try {
      const buffer = Buffer.alloc(MAX_PAC_BYTES + 1);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_PAC_BYTES) throw new Error(`larger than ${MAX_PAC_BYTES} bytes`);
      return buffer.toString('utf8', 0, bytesRead);
    } finally {
      await file.close();
    }
  } catch (err) {
    throw new Error(`cannot read ${path}: ${reason(err)}`, { cause: err });
  }
}

function reason(err: unknown, signal?: AbortSignal): string {
  if (signal?.aborted) return `no answer within ${FETCH_LIMIT_MS} ms`;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  // fetch reports the network failure itself as its cause.
  const cause = (err as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? cause : err;
  return (
    (detail as NodeJS.ErrnoException).code ??
    (detail instanceof Error ? detail.message : String(detail))
  );
}
