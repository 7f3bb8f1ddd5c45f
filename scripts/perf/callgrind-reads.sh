#!/usr/bin/env bash
# Instructions per request on the hot read routes, counted by callgrind (repeatable on this
# machine whatever else runs): the embedded catalog under valgrind, $REQUESTS requests of each
# kind sent one after another on one keep-alive connection (curl -K), counters zeroed before
# each kind and dumped after it.
#
#   cargo build --release -p catalog
#   scripts/perf/callgrind-reads.sh        # product, listing, bestsellers, categories
#
# Needs a seeded data dir: $D/data (made with `catalog seed --products $PRODUCTS --seed 1` when
# missing). Prints instructions per request per kind and keeps each dump under $D for
# callgrind_annotate. BIN: the directory of catalog (default target/release).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Without the per-client limits, as scripts/perf/lib.sh explains.
export CATALOG_RATE_LIMIT_AUTH=off CATALOG_RATE_LIMIT_WRITES=off CATALOG_RATE_LIMIT_READS=off
export CATALOG_MAX_CONNECTIONS_PER_ADDRESS=0
B=${BIN:-$PWD/target/release}
D=${PERF_DIR:-/tmp/catalog-callgrind}
PRODUCTS=${PRODUCTS:-20000}
REQUESTS=${REQUESTS:-2000}
LABEL=${LABEL:-run}
export CATALOG_ADMIN_EMAIL=bench@example.com CATALOG_ADMIN_PASSWORD='bench password 123'
export RUST_LOG=warn CATALOG_ANALYTICS_CAPTURE=${CATALOG_ANALYTICS_CAPTURE:-true}
mkdir -p "$D"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
if [ ! -f "$D/data/.seeded-$PRODUCTS" ]; then
    rm -rf "$D/data"
    "$B/catalog" --data-dir "$D/data" seed --products "$PRODUCTS" --seed 1
    # Once natively: the search index is built and saved, so the run under valgrind only
    # replays the log into memory.
    "$B/catalog" --data-dir "$D/data" serve --listen 127.0.0.1:18381 > "$D/warm.log" 2>&1 &
    warm=$!
    head=$(sqlite3 "$D/data/catalog.db" "select max(position) from events" 2>/dev/null || echo 0)
    for _ in $(seq 600); do
        curl -sf -o /dev/null -H "X-Min-Position: $head" "http://127.0.0.1:18381/api/search?q=a" && break
        sleep 0.5
    done
    kill $warm; wait $warm || true
    touch "$D/data/.seeded-$PRODUCTS"
fi
PORT=18380
URL=http://127.0.0.1:$PORT
rm -f "$D"/callgrind.out.*
valgrind --tool=callgrind --callgrind-out-file="$D/callgrind.out.%p" --dump-instr=no \
    "$B/catalog" --data-dir "$D/data" serve --listen 127.0.0.1:$PORT > "$D/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1800); do
    curl -sf -o /dev/null "$URL/readyz" && break
    sleep 0.2
done
curl -sf -o /dev/null "$URL/readyz" || { echo "the catalog under valgrind never became ready" >&2; exit 1; }
IDS=$(curl -sf "$URL/api/products?limit=100" | python3 -c 'import json,sys; print("\n".join(i["id"] for i in json.load(sys.stdin)["items"]))')
CATEGORY=$(curl -sf "$URL/api/categories" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["slug"])')
urls() { # kind
    case $1 in
        product) for i in $(seq "$REQUESTS"); do echo "$IDS" | sed -n "$(( (i % 100) + 1 ))p" | sed "s|^|$URL/api/products/|"; done ;;
        listing) for _ in $(seq "$REQUESTS"); do echo "$URL/api/products?category=$CATEGORY&sort=bestselling&limit=20"; done ;;
        bestsellers) for _ in $(seq "$REQUESTS"); do echo "$URL/api/products/bestsellers?limit=10"; done ;;
        categories) for _ in $(seq "$REQUESTS"); do echo "$URL/api/categories"; done ;;
    esac
}
for kind in ${KINDS:-product listing bestsellers categories}; do
    urls "$kind" | sed 's/^/url = "/; s/$/"\noutput = "\/dev\/null"/' > "$D/$kind.curl"
    # Warm: every entry loaded once, every lazy path taken.
    curl -s -K "$D/$kind.curl" > /dev/null
    callgrind_control -z "$SERVER" > /dev/null
    curl -s -K "$D/$kind.curl" > /dev/null
    callgrind_control -d "$LABEL-$kind" "$SERVER" > /dev/null
    sleep 1
    dump=$(ls -t "$D"/callgrind.out.* | head -1)
    mv "$dump" "$D/$LABEL-$kind.callgrind"
    total=$(callgrind_annotate "$D/$LABEL-$kind.callgrind" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf '%-12s %s requests: %s instructions, %s per request\n' "$kind" "$REQUESTS" "$total" "$(( total / REQUESTS ))"
done
