#!/usr/bin/env bash
# What the trace export costs product pages: the embedded catalog (3,000 demo products), 64
# closed-loop shoppers (catalog-bench) for 15 s each, A B A B between a binary from before the
# traces ($BEFORE) and this one with the export off, then this one exporting to a collector
# that answers at once, to one that never answers (a slow collector must not slow requests),
# and to the answering one with 1 % sampling:
#
#   cargo build --release -p catalog -p bench
#   BEFORE=/path/to/older/catalog scripts/perf/traces.sh
set -u
cd "$(dirname "$0")/../.."
AFTER=${AFTER:-$PWD/target/release/catalog}
BEFORE=${BEFORE:-$AFTER}
BENCH=${BENCH:-$PWD/target/release/catalog-bench}
DATA=${DATA:-/tmp/catalog-perf-traces}
COLLECTOR=scripts/perf/otel/collector.py
serve() { # label binary env...
    local label=$1 binary=$2; shift 2
    env CATALOG_RATE_LIMIT_READS=off RUST_LOG=warn "$@" "$binary" serve --listen 127.0.0.1:18080 --data-dir "$DATA" >"$DATA.$label.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do curl -fs http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break; sleep 0.2; done
}
run() { # label binary env...
    local label=$1
    serve "$@"
    printf '== %s\n' "$label"
    "$BENCH" shoppers --url http://127.0.0.1:18080 --users 64 --mix product --seconds 15 --ramp-seconds 2 --workers 1 2>&1 | grep -E "req/s|p99|errors" | head -6
    kill -TERM $PID; wait $PID 2>/dev/null
}
if [ ! -d "$DATA" ]; then
    "$AFTER" serve --demo --listen 127.0.0.1:18080 --data-dir "$DATA" >"$DATA.seed.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do curl -fs http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break; sleep 0.2; done
    sleep 2; kill -TERM $PID; wait $PID 2>/dev/null
fi
python3 "$COLLECTOR" ok 14318 2>"$DATA.collector.log" & OK=$!
python3 "$COLLECTOR" blackhole 14319 & HOLE=$!
run before-1 "$BEFORE"
run after-off-1 "$AFTER"
run before-2 "$BEFORE"
run after-off-2 "$AFTER"
run after-collector "$AFTER" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14318
run after-blackhole "$AFTER" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14319
run after-collector-sampled "$AFTER" OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14318 OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
kill $OK $HOLE
tail -1 "$DATA.collector.log"
