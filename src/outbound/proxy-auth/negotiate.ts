// RFC 4559 §4-§5 (HTTP Negotiate; a proxy uses Proxy-Authenticate and Proxy-Authorization,
// RFC 9110 §11.7), RFC 4178 (SPNEGO) over Kerberos (RFC 4121): the tokens come from the GSS-API
// library with the process's Kerberos credentials (the ticket cache of `kinit`, or a keytab),
// not from the outbound's URL. With Kerberos the first token usually suffices; a proxy that
// continues the context sends its token back in the next 407, on the same connection.
import { oneLine, type GssClient } from './kerberos.js';
import type { AsyncAuthExchange, AuthScheme } from './types.js';

const header = (token: string): string => `Negotiate ${token}`;

/**
 * Why Negotiate could not even begin (no ticket, an unknown service principal, no KDC): the
 * proxy has not seen anything yet, so another scheme may still be tried.
 */
export class NegotiateUnavailable extends Error {
  override readonly name = 'NegotiateUnavailable';
}

export const negotiate: AuthScheme<AsyncAuthExchange> = {
  name: 'negotiate',
  title: 'Negotiate',
  connectionBound: true,
  kerberos: true,
  // `Negotiate` alone starts the exchange, `Negotiate <token>` continues it.
  strength: (challenge) => (challenge.params.size === 0 ? 0 : undefined),
  start(credentials): AsyncAuthExchange {
    const kerberos = credentials.kerberos;
    let client: GssClient | undefined;
    let step: 'first' | 'continue' = 'first';
    return {
      async answer(challenge) {
        if (kerberos === undefined) return undefined;
        if (step === 'first') {
          // A token nobody asked for is not answered.
          if (challenge.token68 !== undefined) return undefined;
          step = 'continue';
          const { binding, spn } = kerberos;
          try {
            client = await binding.initializeClient(spn, { mechOID: binding.GSS_MECH_OID_SPNEGO });
            return header(await client.step(''));
          } catch (err) {
            throw new NegotiateUnavailable(`${spn}: ${oneLine((err as Error).message)}`);
          }
        }
        // `Negotiate` alone after our token: the proxy refused it.
        if (challenge.token68 === undefined || client === undefined || client.contextComplete) {
          return undefined;
        }
        try {
          const token = await client.step(challenge.token68);
          return token === '' ? undefined : header(token);
        } catch {
          // The proxy's token does not verify: as good as a refusal.
          return undefined;
        }
      },
    };
  },
};
