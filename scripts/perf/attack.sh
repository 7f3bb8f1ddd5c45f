#!/usr/bin/env bash
# Shoppers under attack (the hostile-traffic issue): the embedded catalog with its default
# limits, 1,000 shoppers on the realistic mix (1 s think time) for $SECONDS_PER_RUN s alone,
# then again while catalog-bench attack runs a login flood (one account, each guess another
# client through X-Forwarded-For from 127.0.0.10, the one trusted proxy), $SLOW slowloris
# connections from 127.0.0.9 and made-up methods.
#
#   cargo build --release -p catalog -p bench
#   scripts/perf/attack.sh
#
# Prints both shopper runs (req/s, p99, errors), the attacker's answers and the server's
# peak RSS. Loopback only; bounded (about 2 minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BIN:-$PWD/target/release}
BENCH=${BENCH:-$PWD/target/release}
D=${PERF_DIR:-/tmp/catalog-perf-attack}
USERS=${USERS:-1000}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-30}
SLOW=${SLOW:-1000}
PORT=18680
mkdir -p "$D"
ulimit -n 20000
. scripts/perf/lib.sh
# This script measures the limits: the defaults, not lib.sh's "off".
unset CATALOG_RATE_LIMIT_AUTH CATALOG_RATE_LIMIT_WRITES CATALOG_RATE_LIMIT_READS
unset CATALOG_MAX_CONNECTIONS_PER_ADDRESS CATALOG_MAX_CONNECTIONS
export CATALOG_ADMIN_EMAIL=bench@example.com CATALOG_ADMIN_PASSWORD='bench password 123'
export CATALOG_TRUSTED_PROXIES=127.0.0.10 RUST_LOG=warn

rm -rf "$D/data"
"$B/catalog" --data-dir "$D/data" serve --demo --listen 127.0.0.1:$PORT > "$D/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
wait_ready "http://127.0.0.1:$PORT" 180

shoppers() {
    "$BENCH/catalog-bench" shoppers --url "http://127.0.0.1:$PORT" --mix realistic --users "$USERS" \
        --think-ms 1000 --seconds "$SECONDS_PER_RUN" --ramp-seconds 5 --server-pids "$SERVER" 2>&1
}

echo "== shoppers alone"
shoppers | tail -15
echo "== shoppers under attack"
shoppers > "$D/under-attack.txt" &
LOAD=$!
sleep 6
"$BENCH/catalog-bench" attack --url "http://127.0.0.1:$PORT" --account bench@example.com \
    --login-source 127.0.0.10 --login-concurrency 40 --login-waves 20 \
    --slowloris "$SLOW" --slowloris-source 127.0.0.9 --methods 200 \
    --seconds $(( SECONDS_PER_RUN - 4 )) --server-pid "$SERVER"
wait "$LOAD"
tail -15 "$D/under-attack.txt"
echo "server peak RSS: $(awk '/VmHWM/ {print int($2 / 1024) " MiB"}' /proc/$SERVER/status)"
echo "errors logged by the server: $(grep -c ERROR "$D/server.log" || true)"
