// RFC 7617: Basic. The user-id and password in UTF-8 (the charset a proxy may ask for, §2.1, is
// the only one defined), base64.
import type { AuthExchange, AuthScheme, ProxyCredentials } from './types.js';

export function basicAuthorization(credentials: ProxyCredentials): string {
  const pair = `${credentials.username}:${credentials.password}`;
  return `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
}

export const basic: AuthScheme<AuthExchange> = {
  name: 'basic',
  title: 'Basic',
  connectionBound: false,
  strength: () => 0,
  start(credentials): AuthExchange {
    let answered = false;
    return {
      answer() {
        // A second challenge means the proxy refused these credentials: nothing else to try.
        if (answered) return undefined;
        answered = true;
        return basicAuthorization(credentials);
      },
    };
  },
};
