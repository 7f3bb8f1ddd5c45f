#!/usr/bin/env bash
# Shopper-latency impact of analytics capture in the distributed mode, and the latency of
# /api/analytics/trending on the Redis view: the command, projectors and query roles as three
# processes on the local PostgreSQL (database perf7, dropped and made again), a tansu broker
# (installed by scripts/test.sh) and the local Redis (key prefix perf7); 20,000 products; the
# query role restarted for each run with CATALOG_ANALYTICS_CAPTURE=true|false.
#
#   cargo build --release -p catalog -p bench
#   MODES="false true false true false true false" LOAD="--users 500 --think-ms 100" \
#       scripts/perf/analytics-distributed.sh
#
# MODES: the capture setting of each run (default: true false true false true false);
# LOAD: catalog-bench shoppers load flags (default: --users 64, a closed loop);
# STOP_PROJECTORS=1 stops the projectors role after the catch-up (nothing counts the stream).
# Loopback only; about 20 s per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Without the per-client limits, as scripts/perf/lib.sh explains.
export CATALOG_RATE_LIMIT_AUTH=off CATALOG_RATE_LIMIT_WRITES=off CATALOG_RATE_LIMIT_READS=off
export CATALOG_MAX_CONNECTIONS_PER_ADDRESS=0
B=$PWD/target/release
T=${CATALOG_TOOLS_DIR:-$HOME/.cache/catalog-tools}/tansu/bin/tansu
D=${PERF_DIR:-/tmp/catalog-perf-analytics}
rm -rf $D/data; mkdir -p $D/data
psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists perf7" -c "create database perf7"
redis-cli --scan --pattern '{perf7}*' | xargs -r redis-cli del >/dev/null
KPORT=19092
$T broker --listener-url tcp://127.0.0.1:$KPORT --advertised-listener-url tcp://127.0.0.1:$KPORT --storage-engine memory://tansu/ > $D/tansu.log 2>&1 &
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
sleep 2
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/perf7
export CATALOG_BUS="kafka://127.0.0.1:$KPORT?partitions=6&replication=1"
export REDIS_URL="redis://127.0.0.1:6379?prefix=perf7"
export CATALOG_DATA_DIR=$D/data CATALOG_ADMIN_EMAIL=bench@example.com CATALOG_ADMIN_PASSWORD='bench password 123'
export CATALOG_LOG_FORMAT=json RUST_LOG=warn
$B/catalog bus setup
$B/catalog serve --role command --listen 127.0.0.1:18081 > $D/command.log 2>&1 &
sleep 3
$B/catalog seed --products 20000 --seed 1
$B/catalog serve --role projectors --listen 127.0.0.1:18082 > $D/projectors.log 2>&1 &
P=$!
# Wait until the read model has caught up (the query role answers X-Min-Position).
HEAD=$(psql -qtA -h 127.0.0.1 -U postgres -d perf7 -c "select max(position) from events")
echo "events: $HEAD"
for mode in ${MODES:-true false true false true false}; do
    CATALOG_ANALYTICS_CAPTURE=$mode $B/catalog serve --role query --listen 127.0.0.1:18090 > $D/query-$mode.log 2>&1 &
    Q=$!
    until curl -sf -o /dev/null -H "X-Min-Position: $HEAD" http://127.0.0.1:18090/api/categories; do sleep 1; done
    if [ -n "${STOP_PROJECTORS:-}" ] && kill -0 $P 2>/dev/null; then kill $P; wait $P || true; echo "(projectors role stopped)"; fi
    echo "== capture=$mode"
    $B/catalog-bench shoppers --url http://127.0.0.1:18090 --mix product ${LOAD:---users 64} --workers 1 --seconds 12 --ramp-seconds 2 --server-pids $Q 2>&1 | tail -12
    sleep 2
    curl -s http://127.0.0.1:18090/metrics | grep -E '^catalog_analytics_events_(published|dropped)_total' || true
    curl -s http://127.0.0.1:18082/metrics | grep -E '^catalog_analytics_events_counted_total' || true
    kill $Q; wait $Q || true
done
# The shared view after the runs: what the projectors role counted.
TOKEN=$(curl -s -X POST http://127.0.0.1:18081/api/auth/login -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 123"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
CATALOG_ANALYTICS_CAPTURE=true $B/catalog serve --role query --listen 127.0.0.1:18090 > $D/query-read.log 2>&1 &
Q=$!
until curl -sf -o /dev/null http://127.0.0.1:18090/api/categories; do sleep 1; done
sleep 5
curl -s -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:18090/api/analytics/trending?window=1h&limit=3'; echo
for w in 1h 24h 7d; do
  for i in $(seq 101); do
    curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:18090/api/analytics/trending?window=$w&limit=10"
  done | sort -n | awk -v w=$w '{a[NR]=$1} END {printf "trending %s: p50 %.2f ms, p90 %.2f ms, max %.2f ms (n=%d)\n", w, a[int(NR/2)+1]*1000, a[int(NR*0.9)]*1000, a[NR]*1000, NR}'
done
for k in v; do echo "members in the newest minute bucket:"; redis-cli --scan --pattern "{perf7}:an:m:*:v" | head -3 | while read key; do redis-cli zcard "$key"; done; done
redis-cli --scan --pattern '{perf7}:an:*' | wc -l
