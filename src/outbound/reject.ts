import { ProxyError } from '../errors.js';
import type { Outbound } from './types.js';

export function createRejectOutbound(): Outbound {
  return {
    name: 'reject',
    dial: () => Promise.reject(new ProxyError('RULE_REJECT', 'rejected by rule')),
  };
}
