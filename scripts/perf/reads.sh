#!/usr/bin/env bash
# The read side against its HTTP ceiling: the catalog and nginx (Debian's, 2 workers) serving the
# same bytes, A B A B, with wrk -t2 on this machine, at 64 and 1,024 connections:
#
#   cargo build --release -p catalog -p bench
#   scripts/perf/reads.sh                     # embedded, then distributed
#   scripts/perf/reads.sh embedded            # some parts, in that order
#
# Parts:
#   embedded     the all-in-one binary over $PRODUCTS products (`catalog seed --seed 1`, made once
#                under $D/embedded and reused)
#   edge         Varnish (docker/varnish/catalog.vcl) in front of the embedded catalog, purged by
#                it; the same cells through Varnish against nginx, and Varnish's hit ratio
#   distributed  one query process reading Redis (its L1 in front) on the local PostgreSQL
#                (database perfreads, made once and reused) with the projectors role keeping
#                the Redis views; the load starts once the Redis view has caught up
# Each part measures, catalog then nginx, twice (A B A B), $SECONDS_PER_CELL s per cell:
#   product      GET /api/products/{id}, a random id of $IDS ids drawn over the whole catalog
#   listing      GET /api/products?category=C&sort=bestselling&limit=20, a random category
#   bestsellers  GET /api/products/bestsellers?limit=10
# nginx serves, for each URL, the very bytes the catalog answered for it (fetched before the
# run into $D/www), so the two differ only in who serves them.
# BIN: the directory of catalog and catalog-bench (default target/release), to compare builds.
# Loopback only; bounded (wrk -d).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${BIN:-$PWD/target/release}
D=${PERF_DIR:-/tmp/catalog-perf-reads}
PRODUCTS=${PRODUCTS:-100000}
IDS=${IDS:-20000}
SECONDS_PER_CELL=${SECONDS_PER_CELL:-10}
CONNECTIONS=${CONNECTIONS:-64 1024}
KINDS=${KINDS:-product listing bestsellers}
export CATALOG_ADMIN_EMAIL=bench@example.com CATALOG_ADMIN_PASSWORD='bench password 123'
export CATALOG_LOG_FORMAT=json RUST_LOG=warn
mkdir -p "$D"
ulimit -n 20000
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx is missing: apt-get install nginx-light" >&2; exit 1; }
. scripts/perf/lib.sh

# The same bytes for nginx: every URL the load asks for, fetched from the catalog under the
# path nginx serves it at; and the wrk scripts choosing among them.
fetch_pages() { # catalog URL
    rm -rf "$D/www"
    python3 - "$1" "$D" "$IDS" <<'PY'
import json, os, random, sys, urllib.request
base, root, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
www = os.path.join(root, "www")
def get(path):
    with urllib.request.urlopen(base + path) as answer:
        return answer.read()
ids, cursor = [], None
while True:
    page = json.loads(get("/api/products?limit=100&sort=newest" + (f"&cursor={cursor}" if cursor else "")))
    ids += [item["id"] for item in page["items"]]
    cursor = page["next_cursor"]
    if not cursor:
        break
random.Random(1).shuffle(ids)
ids = ids[:wanted]
os.makedirs(os.path.join(www, "p"), exist_ok=True)
for i, id in enumerate(ids):
    with open(os.path.join(www, "p", id), "wb") as file:
        file.write(get(f"/api/products/{id}"))
categories = [c["slug"] for c in json.loads(get("/api/categories"))["items"]]
os.makedirs(os.path.join(www, "l"), exist_ok=True)
for slug in categories:
    with open(os.path.join(www, "l", slug), "wb") as file:
        file.write(get(f"/api/products?category={slug}&sort=bestselling&limit=20"))
with open(os.path.join(www, "bestsellers"), "wb") as file:
    file.write(get("/api/products/bestsellers?limit=10"))
for name, items in (("ids", ids), ("categories", categories)):
    with open(os.path.join(root, name), "w") as file:
        file.write("\n".join(items) + "\n")
print(f"{len(ids)} product pages, {len(categories)} listings, bestsellers under {www}")
PY
    lua_script product "/api/products/" "/p/" ids
    lua_script listing "/api/products?sort=bestselling&limit=20&category=" "/l/" categories
    printf 'request = function() return wrk.format("GET", "%s") end\n' \
        "/api/products/bestsellers?limit=10" > "$D/catalog-bestsellers.lua"
    printf 'request = function() return wrk.format("GET", "/bestsellers") end\n' > "$D/nginx-bestsellers.lua"
}

lua_script() { # kind, catalog prefix, nginx prefix, list file
    for target in catalog nginx; do
        local prefix=$2
        [ "$target" = nginx ] && prefix=$3
        cat > "$D/$target-$1.lua" <<LUA
local items = {}
for line in io.lines("$D/$4") do items[#items + 1] = line end
math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6))
request = function()
    return wrk.format("GET", "$prefix" .. items[math.random(#items)])
end
LUA
    done
}

start_nginx() {
    mkdir -p "$D/nginx"
    cat > "$D/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $D/nginx/nginx.pid;
error_log $D/nginx/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    default_type application/json;
    server {
        listen 127.0.0.1:18290 reuseport backlog=4096;
        root $D/www;
        location / { }
    }
}
CONF
    nginx -c "$D/nginx/nginx.conf" -g 'daemon off; user root;' &
    PIDS+=($!)
    sleep 1
}

cell() { # label, base URL, lua script, connections
    local out
    out=$(wrk -t2 -c"$4" -d"${SECONDS_PER_CELL}s" --latency -s "$3" "$2" 2>&1)
    local rps p99 errors
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    printf '%-34s %5s conns  %10s req/s  p99 %8s  %s\n' "$1" "$4" "$rps" "$p99" "$errors"
}

compare() { # part name, catalog base URL
    for kind in $KINDS; do
        for connections in $CONNECTIONS; do
            for round in 1 2; do
                cell "$1 $kind (round $round)" "$2" "$D/catalog-$kind.lua" "$connections"
                cell "nginx $kind (round $round)" http://127.0.0.1:18290 "$D/nginx-$kind.lua" "$connections"
            done
        done
    done
}

embedded() {
    echo "== embedded: the all-in-one binary over $PRODUCTS products"
    if [ ! -f "$D/embedded/.seeded-$PRODUCTS" ]; then
        rm -rf "$D/embedded"
        "$B/catalog" --data-dir "$D/embedded" seed --products "$PRODUCTS" --seed 1
        touch "$D/embedded/.seeded-$PRODUCTS"
    fi
    "$B/catalog" --data-dir "$D/embedded" serve --listen 127.0.0.1:18280 > "$D/embedded.log" 2>&1 &
    local server=$!
    PIDS+=($server)
    wait_ready http://127.0.0.1:18280
    fetch_pages http://127.0.0.1:18280
    start_nginx
    compare "catalog embedded" http://127.0.0.1:18280
    kill "$server" "$(cat "$D/nginx/nginx.pid")" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    sleep 1
}

edge() {
    echo "== edge: Varnish in front of the embedded catalog over $PRODUCTS products"
    [ -f "$D/embedded/.seeded-$PRODUCTS" ] || { echo "run the embedded part first (it seeds)" >&2; return 1; }
    "$B/catalog" --data-dir "$D/embedded" serve --listen 127.0.0.1:18280 \
        --edge-purge-url http://127.0.0.1:18270 > "$D/embedded-edge.log" 2>&1 &
    local server=$!
    PIDS+=($server)
    start_varnish "$D" 18270 18280 -s malloc,1g -p thread_pool_min=200
    local cache=$VARNISH_PID
    wait_ready http://127.0.0.1:18280
    sleep 2
    [ -d "$D/www" ] || fetch_pages http://127.0.0.1:18280
    start_nginx
    # Warm: every page once through the edge.
    for id in $(cat "$D/ids"); do echo "url = \"http://127.0.0.1:18270/api/products/$id\""; echo 'output = "/dev/null"'; done > "$D/warm.curl"
    curl -s -K "$D/warm.curl" > /dev/null
    local before_hits before_misses
    before_hits=$(varnishstat -n "$D/varnish" -1 -f MAIN.cache_hit | awk '{print $2}')
    before_misses=$(varnishstat -n "$D/varnish" -1 -f MAIN.cache_miss | awk '{print $2}')
    compare "varnish over embedded" http://127.0.0.1:18270
    local hits misses
    hits=$(( $(varnishstat -n "$D/varnish" -1 -f MAIN.cache_hit | awk '{print $2}') - before_hits ))
    misses=$(( $(varnishstat -n "$D/varnish" -1 -f MAIN.cache_miss | awk '{print $2}') - before_misses ))
    echo "varnish during the cells: $hits hits, $misses misses, hit ratio $(python3 -c "print(f'{$hits / max(1, $hits + $misses):.4f}')")"
    kill "$server" "$cache" "$(cat "$D/nginx/nginx.pid")" 2>/dev/null || true
    wait "$server" "$cache" 2>/dev/null || true
    sleep 1
}

distributed() {
    echo "== distributed: one query process reading Redis, over $PRODUCTS products in PostgreSQL"
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/perfreads
    export REDIS_URL="redis://127.0.0.1:6379?prefix=perfreads"
    export CATALOG_DATA_DIR=$D/distributed
    if ! psql -qtA -h 127.0.0.1 -U postgres -d perfreads -c "select 1 from perf_seeded where products = $PRODUCTS" 2>/dev/null | grep -q 1; then
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "drop database if exists perfreads" -c "create database perfreads"
        redis-cli --scan --pattern 'perfreads*' | xargs -r redis-cli del > /dev/null
        "$B/catalog" migrate
        "$B/catalog" seed --products "$PRODUCTS" --seed 1
        psql -q -h 127.0.0.1 -U postgres -d perfreads -c "create table perf_seeded (products int)" \
            -c "insert into perf_seeded values ($PRODUCTS)"
    fi
    "$B/catalog" serve --role projectors --listen 127.0.0.1:18283 > "$D/projectors.log" 2>&1 &
    PIDS+=($!)
    local projectors=$!
    # Alive is enough: the projectors are ready once caught up, which the load waits for below.
    until curl -sf -o /dev/null http://127.0.0.1:18283/healthz; do sleep 0.2; done
    "$B/catalog" serve --role query --listen 127.0.0.1:18282 > "$D/query.log" 2>&1 &
    local query=$!
    PIDS+=($query)
    wait_ready http://127.0.0.1:18282
    local head
    head=$(psql -qtA -h 127.0.0.1 -U postgres -d perfreads -c "select coalesce(max(position), 0) from events")
    echo "waiting for the Redis view to reach position $head"
    until curl -sf -o /dev/null -H "X-Min-Position: $head" http://127.0.0.1:18282/api/categories; do sleep 1; done
    fetch_pages http://127.0.0.1:18282
    start_nginx
    compare "catalog distributed (Redis)" http://127.0.0.1:18282
    kill "$query" "$projectors" "$(cat "$D/nginx/nginx.pid")" 2>/dev/null || true
    wait "$query" "$projectors" 2>/dev/null || true
    sleep 1
}

for part in "${@:-embedded distributed}"; do
    for name in $part; do "$name"; done
done
