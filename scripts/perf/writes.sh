#!/usr/bin/env bash
# The write side's benchmarks, embedded and distributed, with pgbench's ceiling in the same run:
#
#   cargo build --release -p catalog -p bench
#   scripts/perf/writes.sh                  # everything
#   scripts/perf/writes.sh embedded pgbench # some parts, in that order
#
# Parts:
#   embedded     the all-in-one binary on SQLite (data under $D/embedded, made again)
#   distributed  command, projectors and query roles as three processes on the local PostgreSQL
#                (database perfwrites, dropped and made again), the outbox relayed to a tansu
#                broker (installed by scripts/test.sh); the read model in PostgreSQL
#   pgbench      single-row inserts at 64 clients (database perfwrites_pgbench): the ceiling
# Each of embedded and distributed runs, against its command API:
#   catalog-bench commands    price changes to random products of 100,000 (created first),
#                             at 1 and 64 clients
#   catalog-bench history     sequential sales on one product at $HISTORY events of history
#   catalog-bench flash-sale  64 buyers of one product with $STOCK units, checked exact on the
#                             write and the read side
# BIN: the directory of catalog and catalog-bench (default target/release), to compare builds.
# Loopback only; bounded (each load step ends by itself).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BIN:-$PWD/target/release}
T=${CATALOG_TOOLS_DIR:-$HOME/.cache/catalog-tools}/tansu/bin/tansu
D=${PERF_DIR:-/tmp/catalog-perf-writes}
HISTORY=${HISTORY:-0,10000,100000}
STOCK=${STOCK:-50000}
PRODUCTS=${PRODUCTS:-100000}
SECONDS_PER_STEP=${SECONDS_PER_STEP:-10}
export CATALOG_ADMIN_EMAIL=bench@example.com CATALOG_ADMIN_PASSWORD='bench password 123'
export CATALOG_LOG_FORMAT=json RUST_LOG=warn
mkdir -p "$D"
. scripts/perf/lib.sh
# Its jobs are started in subshells too: stop every job.
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

load() { # command API, query API
    echo "-- commands: price changes to random products of $PRODUCTS"
    "$B/catalog-bench" commands --url "$1" --clients 1,64 --seconds "$SECONDS_PER_STEP" --products "$PRODUCTS"
    echo "-- history: sequential sales on one product"
    "$B/catalog-bench" history --url "$1" --history "$HISTORY" --samples "${SAMPLES:-500}"
    echo "-- flash sale"
    "$B/catalog-bench" flash-sale --url "$1" --query-url "$2" --stock "$STOCK" --clients 64
}

embedded() {
    echo "== embedded (SQLite)"
    rm -rf "$D/embedded"
    "$B/catalog" --data-dir "$D/embedded" serve --listen 127.0.0.1:18180 > "$D/embedded.log" 2>&1 &
    local server=$!
    wait_ready http://127.0.0.1:18180 60
    load http://127.0.0.1:18180 http://127.0.0.1:18180
    kill $server; wait $server || true
}

distributed() {
    echo "== distributed (PostgreSQL store, outbox, relay to Kafka on tansu)"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists perfwrites" -c "create database perfwrites"
    local port=19192
    "$T" broker --listener-url tcp://127.0.0.1:$port --advertised-listener-url tcp://127.0.0.1:$port \
        --storage-engine memory://tansu/ > "$D/tansu.log" 2>&1 &
    local broker=$!
    sleep 2
    rm -rf "$D/distributed"
    (
        export DATABASE_URL=postgres://postgres@127.0.0.1:5432/perfwrites
        export CATALOG_BUS="kafka://127.0.0.1:$port?partitions=6&replication=1"
        export CATALOG_DATA_DIR=$D/distributed
        "$B/catalog" bus setup
        "$B/catalog" serve --role command --listen 127.0.0.1:18181 > "$D/command.log" 2>&1 &
        local command=$!
        wait_ready http://127.0.0.1:18181 60
        "$B/catalog" serve --role projectors --listen 127.0.0.1:18182 > "$D/projectors.log" 2>&1 &
        "$B/catalog" serve --role query --listen 127.0.0.1:18183 > "$D/query.log" 2>&1 &
        wait_ready http://127.0.0.1:18183 60
        load http://127.0.0.1:18181 http://127.0.0.1:18183
        kill $(jobs -p) 2>/dev/null || true
        wait || true
    )
    kill $broker; wait $broker || true
}

pgbench_inserts() {
    echo "== pgbench: single-row inserts, 64 clients, $SECONDS_PER_STEP s"
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists perfwrites_pgbench" \
        -c "create database perfwrites_pgbench"
    psql -q -h 127.0.0.1 -U postgres -d perfwrites_pgbench \
        -c "create table rows (id bigserial primary key, value bigint not null, at timestamptz not null default now())"
    printf '\\set value random(1, 1000000)\nINSERT INTO rows (value) VALUES (:value);\n' > "$D/insert.sql"
    pgbench -h 127.0.0.1 -U postgres -n -c 64 -j 2 -T "$SECONDS_PER_STEP" -f "$D/insert.sql" perfwrites_pgbench \
        2>&1 | grep -E '^(number of transactions actually processed|latency average|tps)'
}

for part in "${@:-embedded distributed pgbench}"; do
    for name in $part; do
        case $name in
            embedded) embedded ;;
            distributed) distributed ;;
            pgbench) pgbench_inserts ;;
            *) echo "unknown part $name (embedded, distributed, pgbench)" >&2; exit 2 ;;
        esac
    done
done
