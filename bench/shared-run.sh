#!/usr/bin/env bash
# junction in the shared loopback benchmark, beside the peers it is compared with: one worker,
# two workers, and the bare Node.js relay (the floor for any Node proxy), all in one run.
#
#   HARNESS=../shared/bench/run.sh PEERS="direct squid tinyproxy proxychain" bash bench/shared-run.sh
#
# HARNESS is the shared harness's run.sh (it installs and starts the peers itself); its report
# (results-<stamp>.md) lands in OUT_DIR (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-../shared/bench/run.sh}
HARNESS_DIR=$(cd "$(dirname "$HARNESS")" && pwd)
npm run build >/dev/null
export OUT_DIR=${OUT_DIR:-$PWD/bench/results}
export PEERS=${PEERS:-"direct squid tinyproxy proxychain"}
export GATEWAY_NAME=junction \
  GATEWAY_CMD='node dist/main.js -L socks5://127.0.0.1:22101 -L http://127.0.0.1:22102' \
  GATEWAY_SOCKS=127.0.0.1:22101 GATEWAY_HTTP=127.0.0.1:22102
export GATEWAY2_NAME=junction-workers2 \
  GATEWAY2_CMD='node dist/main.js --workers 2 -L socks5://127.0.0.1:22111 -L http://127.0.0.1:22112' \
  GATEWAY2_SOCKS=127.0.0.1:22111 GATEWAY2_HTTP=127.0.0.1:22112
export GATEWAY3_NAME=bare-node \
  GATEWAY3_CMD="node $HARNESS_DIR/peers/bare-node.mjs 22121 22122" \
  GATEWAY3_SOCKS=127.0.0.1:22121 GATEWAY3_HTTP=127.0.0.1:22122
mkdir -p "$OUT_DIR"
exec bash "$HARNESS"
