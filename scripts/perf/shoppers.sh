#!/usr/bin/env bash
# 100,000 shoppers on the realistic mix against the distributed read side, with writes:
#
#   cargo build --release -p catalog -p bench
#   scripts/perf/shoppers.sh              # three 60 s runs, then one with Redis stopped 10 s
#
# The stack, all on this machine: PostgreSQL primary (5432) and its streaming replica (5433,
# as scripts/test.sh makes it), Redis (6379, key prefix perfshop), a tansu Kafka broker
# (installed by scripts/test.sh; without it, BUS=none has the projectors follow the store),
# the command and projectors roles, $QUERIES query processes on one port with SO_REUSEPORT
# (reading Redis, then the replica), and Varnish (docker/varnish/catalog.vcl) in front of them,
# purged by them, for the write-to-visible lag at the edge. The shoppers go to the query
# processes (Varnish gives one thread per connection: it does not hold 100,000).
#
# Each run: catalog-bench shoppers --mix $MIX (realistic) --users $USERS --workers 7 --think-ms 10000,
# 30 s ramp, $SECONDS_PER_RUN s measured, $WRITES writes/s through the command role, each
# followed until visible in a query process's L1 and at the edge. STALL=no skips the run with
# Redis unresponsive.
# Loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BIN:-$PWD/target/release}
T=${CATALOG_TOOLS_DIR:-$HOME/.cache/catalog-tools}/tansu/bin/tansu
D=${PERF_DIR:-/tmp/catalog-perf-shoppers}
PRODUCTS=${PRODUCTS:-20000}
USERS=${USERS:-100000}
QUERIES=${QUERIES:-7}
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-60}
WRITES=${WRITES:-20}
MIX=${MIX:-realistic}
STALL=${STALL:-yes}
POOL=${POOL:-8}
BUS=${BUS:-kafka}
export CATALOG_ADMIN_EMAIL=bench@example.com CATALOG_ADMIN_PASSWORD='bench password 123'
export CATALOG_LOG_FORMAT=json RUST_LOG=warn
mkdir -p "$D"
ulimit -n 20000
. scripts/perf/lib.sh

pg_isready -q -h 127.0.0.1 -p 5433 || { echo "no replica on 127.0.0.1:5433: run scripts/test.sh once (it makes one)" >&2; exit 1; }
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/perfshop
export REDIS_URL="redis://127.0.0.1:6379?prefix=perfshop"
export CATALOG_DATA_DIR=$D/data
psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists perfshop" -c "create database perfshop"
redis-cli --scan --pattern 'perfshop*' | xargs -r redis-cli del > /dev/null
rm -rf "$D/data"
if [ "$BUS" = kafka ]; then
    [ -x "$T" ] || { echo "tansu is not installed ($T): scripts/test.sh installs it, or BUS=none" >&2; exit 1; }
    "$T" broker --listener-url tcp://127.0.0.1:19292 --advertised-listener-url tcp://127.0.0.1:19292 \
        --storage-engine memory://tansu/ > "$D/tansu.log" 2>&1 &
    PIDS+=($!)
    sleep 2
    export CATALOG_BUS="kafka://127.0.0.1:19292?partitions=6&replication=1"
    "$B/catalog" bus setup
fi
export CATALOG_DATABASE_POOL_SIZE=$POOL
"$B/catalog" serve --role command --listen 127.0.0.1:18481 > "$D/command.log" 2>&1 &
PIDS+=($!)
wait_ready http://127.0.0.1:18481
"$B/catalog" seed --products "$PRODUCTS" --seed 1
"$B/catalog" serve --role projectors --listen 127.0.0.1:18483 > "$D/projectors.log" 2>&1 &
PIDS+=($!)
until curl -sf -o /dev/null http://127.0.0.1:18483/healthz; do sleep 0.2; done
# Varnish in front of the query processes, purged by them.
start_varnish "$D" 18480 18482 -s malloc,256m
QUERY_PIDS=()
for i in $(seq "$QUERIES"); do
    DATABASE_READ_URL=postgres://postgres@127.0.0.1:5433/perfshop CATALOG_EDGE_PURGE_URL=http://127.0.0.1:18480 \
        "$B/catalog" serve --role query --reuse-port --listen 127.0.0.1:18482 > "$D/query-$i.log" 2>&1 &
    PIDS+=($!)
    QUERY_PIDS+=($!)
done
wait_ready http://127.0.0.1:18482
sleep 2
head=$(psql -qtA -h 127.0.0.1 -U postgres -d perfshop -c "select coalesce(max(position), 0) from events")
echo "waiting for the views to reach position $head (the Redis view itself, not only the replica)"
until [ "$(redis-cli get '{perfshop}:checkpoint')" -ge "$head" ] 2>/dev/null; do sleep 1; done
until curl -sf -o /dev/null -H "X-Min-Position: $head" http://127.0.0.1:18482/api/categories; do sleep 1; done
echo "caught up: $(redis-cli get '{perfshop}:checkpoint')"
pids=$(IFS=,; echo "${QUERY_PIDS[*]}")
shoppers() {
    "$B/catalog-bench" shoppers --url http://127.0.0.1:18482 --edge-url http://127.0.0.1:18480 \
        --direct-url http://127.0.0.1:18482 --mix "$MIX" --users "$USERS" --workers 7 \
        --think-ms 10000 --ramp-seconds 30 --seconds "$SECONDS_PER_RUN" \
        --writes-per-second "$WRITES" --command-url http://127.0.0.1:18481 --server-pids "$pids"
}
for run in $(seq "$RUNS"); do
    echo "== run $run of $RUNS: $USERS users, $SECONDS_PER_RUN s"
    shoppers
done
[ "$STALL" = yes ] || exit 0
echo "== Redis stopped for 10 s in the middle of the run"
(
    sleep $((30 + SECONDS_PER_RUN / 2 - 5))
    redis-cli -p 6379 client pause 10000 all > /dev/null
    echo "   (Redis paused for 10 s: every command waits, as on a stopped server)"
) &
shoppers
wait
