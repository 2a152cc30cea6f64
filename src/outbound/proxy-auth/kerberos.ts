// RFC 2743 (GSS-API) through the optional, native `kerberos` package: the client context that
// Negotiate (negotiate.ts) takes its tokens from. The package is imported only when an outbound
// may answer Negotiate; without it, every other scheme still works.
import type { OutboundConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';

/** What junction uses of a GSS-API client context. */
export interface GssClient {
  /** The next token (base64) for the server's token (base64, '' for the first step). */
  step(challenge: string): Promise<string>;
  readonly contextComplete: boolean;
}

/** What junction uses of the `kerberos` package. */
export interface KerberosBinding {
  /** `service` is a host-based service name: `HTTP@proxy.example`. */
  initializeClient(service: string, options: { mechOID: number }): Promise<GssClient>;
  readonly GSS_MECH_OID_SPNEGO: number;
}

/**
 * The binding, once loaded at start. Outbounds are built before that: they hold this and read
 * it when a proxy asks for Negotiate.
 */
export interface KerberosSupport {
  binding: KerberosBinding | undefined;
}

export function createKerberosSupport(): KerberosSupport {
  return { binding: undefined };
}

/** An outbound's Negotiate: where its binding comes from, and the proxy's service principal. */
export interface KerberosTarget {
  readonly support: KerberosSupport;
  readonly spn: string;
}

export type Loaded = { readonly binding: KerberosBinding } | { readonly reason: string };

// A variable, not a literal: the package is optional, and the type checker must not need it.
const PACKAGE = 'kerberos';
let loading: Promise<Loaded> | undefined;

/** The package, imported once per process (a native module loads once anyway). */
export function loadKerberos(): Promise<Loaded> {
  loading ??= import(PACKAGE).then(
    (module: { default?: unknown }) => ({ binding: (module.default ?? module) as KerberosBinding }),
    (err: unknown) => ({ reason: whyNotLoaded(err) }),
  );
  return loading;
}

function whyNotLoaded(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  if (code === 'ERR_MODULE_NOT_FOUND' && message.includes(`'${PACKAGE}'`)) {
    return 'the optional kerberos package is not installed (npm builds it only where libkrb5-dev, make and a C++ compiler are present)';
  }
  return `the kerberos package does not load: ${oneLine(message)}`;
}

export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The outbounds that may answer Negotiate: http(s) ones whose schemes include it. */
function negotiating(outbounds: readonly OutboundConfig[]): OutboundConfig[] {
  return outbounds.filter(
    (o) => /^https?:/.test(o.url ?? '') && (o.auth?.schemes ?? ['negotiate']).includes('negotiate'),
  );
}

/** Outbounds that name Negotiate, a keytab or a service principal: they count on Kerberos. */
function askingForKerberos(o: OutboundConfig): boolean {
  const auth = o.auth;
  return (
    auth?.schemes?.includes('negotiate') === true ||
    auth?.keytab !== undefined ||
    auth?.spn !== undefined
  );
}

/**
 * Loads the binding when an outbound may use it, and says so when one that asks for Kerberos
 * cannot have it. A keytab is the process's (the GSS library reads it from the environment):
 * with one, tickets go to a cache in junction's memory, never to the user's cache.
 */
export async function prepareKerberos(
  support: KerberosSupport,
  outbounds: readonly OutboundConfig[],
  log: Logger,
  options: { readonly env?: NodeJS.ProcessEnv; readonly load?: () => Promise<Loaded> } = {},
): Promise<void> {
  const { env = process.env, load = loadKerberos } = options;
  const candidates = negotiating(outbounds);
  if (candidates.length === 0) return;
  const loaded = await load();
  const asking = candidates.filter(askingForKerberos).map((o) => o.name);
  if ('reason' in loaded) {
    if (asking.length > 0) {
      log.warn(
        { outbounds: asking, reason: loaded.reason },
        'Negotiate (Kerberos) is unavailable: these outbounds answer with their other schemes',
      );
    } else {
      log.debug({ reason: loaded.reason }, 'Negotiate (Kerberos) is unavailable');
    }
    return;
  }
  support.binding = loaded.binding;
  const keytabs = [...new Set(candidates.flatMap((o) => o.auth?.keytab ?? []))];
  const [keytab, ...others] = keytabs;
  if (keytab === undefined) return;
  if (others.length > 0) {
    log.warn(
      { keytab, ignored: others },
      'one keytab serves the whole process: the first one configured is used',
    );
  }
  env.KRB5_CLIENT_KTNAME = `FILE:${keytab}`;
  // Not the user's cache: tickets there, for another principal, would be used instead.
  env.KRB5CCNAME = 'MEMORY:junction';
}
