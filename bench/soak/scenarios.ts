import type { Scenario } from './scenario.js';
import { authRefused, drip, probe, refused, unresolvable } from './scenarios-edge.js';
import { clientReset, leaveEarly, originReset } from './scenarios-fault.js';
import { keepAlive, pipelined } from './scenarios-http.js';
import { halfClose, slowReader, transfer } from './scenarios-transfer.js';

/** The mix a soak draws from, each in proportion to its weight. */
export const SCENARIOS: readonly Scenario[] = [
  transfer,
  halfClose,
  slowReader,
  clientReset,
  originReset,
  leaveEarly,
  pipelined,
  keepAlive,
  refused,
  unresolvable,
  probe,
  drip,
  authRefused,
];
