import { STATUS_CODES } from 'node:http';
import { ProxyError, UPSTREAM_HTTP_STATUS } from '../errors.js';

/** An upstream's non-2xx answer as a ProxyError; table in errors.ts (UPSTREAM_HTTP_STATUS). */
export function refusal(
  status: number,
  label: string,
  authority: string,
  hasCredentials: boolean,
): ProxyError {
  const code = UPSTREAM_HTTP_STATUS.get(status) ?? 'UPSTREAM_FAILED';
  if (code === 'UPSTREAM_AUTH_FAILED') {
    const detail = hasCredentials ? '' : ': it wants credentials and none are configured';
    return new ProxyError(code, `upstream proxy ${label} authentication failed${detail}`, {
      answered: true,
    });
  }
  const reason = STATUS_CODES[status] ?? 'Unknown';
  return new ProxyError(
    code,
    `upstream proxy ${label} answered ${status} ${reason} to CONNECT ${authority}`,
    { answered: true },
  );
}
