#!/usr/bin/env bash
# Checks the catalog's OpenSearch adapter against a real OpenSearch 2.x — what the tests of
# search/tests/opensearch.rs can only check against a fake.
#
# It starts no engine itself. Start them first, e.g. with docker-compose.yml:
#
#   docker compose up -d postgres opensearch      # OpenSearch on 127.0.0.1:9200, PostgreSQL on :5432
#   scripts/opensearch-check.sh
#
# Then it builds the catalog (release), runs one `catalog serve` (role all: command API,
# projectors feeding OpenSearch, query API searching it) on a free port against a database of
# its own, seeds a few products through the API, and checks searches through the API:
# a typo in the last word, the any-word fallback, a SKU, multi-select facets, highlights,
# suggestions, did-you-mean, synonyms, and `/readyz` (which includes OpenSearch). It also asks
# OpenSearch directly whether the index has the fields suggestions need.
#
# Settings (environment):
#   OPENSEARCH_URL   default http://127.0.0.1:9200 (https:// is passed on as opensearchs://)
#   PG_URL           default postgres://postgres@127.0.0.1:5432 (a server; the script creates
#                    the database catalog_opensearch_check on it, dropping an earlier one)
#   RESET=1          delete catalog-products-* and catalog-checkpoints in OpenSearch first.
#                    Needed when they exist: the catalog keeps one alias per cluster, and a
#                    checkpoint stored for another database would skip this one's events.
#                    Without RESET the script stops when they exist, touching nothing.
#
# Needs: cargo, curl, python3, psql (PostgreSQL client).
set -euo pipefail
cd "$(dirname "$0")/.."

OPENSEARCH_URL=${OPENSEARCH_URL:-http://127.0.0.1:9200}
OPENSEARCH_URL=${OPENSEARCH_URL%/}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PG_URL=${PG_URL%/}
DATABASE=catalog_opensearch_check
ADMIN_EMAIL=check@example.com
ADMIN_PASSWORD=check-password-123

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'opensearch-check: FAILED: %s\n' "$*" >&2; exit 1; }
pass() { printf '  ok: %s\n' "$*"; }

for tool in cargo curl python3 psql; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

# `json EXPRESSION` reads JSON on stdin and prints the Python expression over it (`d`).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

case "$OPENSEARCH_URL" in
    http://*) CATALOG_SEARCH="opensearch://${OPENSEARCH_URL#http://}" ;;
    https://*) CATALOG_SEARCH="opensearchs://${OPENSEARCH_URL#https://}" ;;
    *) fail "OPENSEARCH_URL must start with http:// or https:// (is $OPENSEARCH_URL)" ;;
esac

step "OpenSearch at $OPENSEARCH_URL"
health=$(curl -fsS "$OPENSEARCH_URL/_cluster/health?wait_for_status=yellow&timeout=30s") \
    || fail "no OpenSearch at $OPENSEARCH_URL (docker compose up -d opensearch)"
status=$(echo "$health" | json 'd["status"]')
[ "$status" != red ] || fail "the cluster is red"
version=$(curl -fsS "$OPENSEARCH_URL" | json 'd["version"]["number"]')
pass "cluster $status, OpenSearch $version"

# A wildcard answers an empty list when nothing matches (a missing concrete name would be a 404).
existing=$(curl -fsS "$OPENSEARCH_URL/_cat/indices/catalog-*?h=index&expand_wildcards=all" \
    | grep -E '^(catalog-products-.+|catalog-checkpoints)$' || true)
if [ -n "$existing" ]; then
    if [ "${RESET:-}" = 1 ]; then
        for index in $existing; do
            curl -fsS -X DELETE "$OPENSEARCH_URL/$index" >/dev/null
        done
        pass "deleted $(echo $existing)"
    else
        fail "OpenSearch already holds $(echo $existing); run with RESET=1 to delete them (this cluster's catalog index is lost)"
    fi
fi

step "PostgreSQL database $DATABASE"
psql "$PG_URL/postgres" -qtAc "DROP DATABASE IF EXISTS $DATABASE" >/dev/null \
    || fail "cannot reach PostgreSQL at $PG_URL (docker compose up -d postgres)"
psql "$PG_URL/postgres" -qtAc "CREATE DATABASE $DATABASE" >/dev/null
pass "created"

step "Building the catalog (release)"
cargo build --release -p catalog
BINARY=${CARGO_TARGET_DIR:-target}/release/catalog

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE=http://127.0.0.1:$PORT
DATA_DIR=$(mktemp -d)
LOG=$DATA_DIR/catalog.log
step "catalog serve on $BASE (log: $LOG)"
DATABASE_URL="$PG_URL/$DATABASE" CATALOG_SEARCH="$CATALOG_SEARCH" CATALOG_DATA_DIR="$DATA_DIR" \
    CATALOG_ADMIN_EMAIL=$ADMIN_EMAIL CATALOG_ADMIN_PASSWORD=$ADMIN_PASSWORD \
    "$BINARY" serve --listen "127.0.0.1:$PORT" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT

ready=""
for _ in $(seq 1 120); do
    kill -0 "$SERVER" 2>/dev/null || { tail -20 "$LOG" >&2; fail "catalog serve exited"; }
    if curl -fsS "$BASE/readyz" >/dev/null 2>&1; then ready=yes; break; fi
    sleep 1
done
[ -n "$ready" ] || { curl -sS "$BASE/readyz" >&2 || true; fail "/readyz did not answer 200 within 120 s"; }
readyz=$(curl -sS "$BASE/readyz")
echo "$readyz" | grep -q opensearch || fail "/readyz does not check OpenSearch: $readyz"
pass "/readyz answers 200 and checks OpenSearch"

step "Seeding products"
TOKEN=$(curl -fsS "$BASE/api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | json 'd["access_token"]')
auth=(-H "authorization: Bearer $TOKEN" -H 'content-type: application/json')
for category in computers kitchen furniture; do
    curl -fsS "$BASE/api/categories" "${auth[@]}" -d "{\"slug\":\"$category\",\"name\":\"$category\"}" >/dev/null
done
POSITION=0
create() { # sku name brand category price stock
    local answer
    answer=$(curl -fsS "$BASE/api/products" "${auth[@]}" -d "{\"sku\":\"$1\",\"name\":\"$2\",\"brand\":\"$3\",
        \"category\":\"$4\",\"price_cents\":$5,\"currency\":\"USD\",\"stock\":$6,\"status\":\"published\",
        \"description\":\"The $2 by $3.\"}") || fail "creating $1"
    POSITION=$(echo "$answer" | json 'd["position"]')
}
create CHK-LAPT-1 "Gaming Laptop" Vortex computers 149900 4
create CHK-LAPT-2 "Office Laptop" Acme computers 89900 2
create CHK-KETT-1 "Gooseneck Kettle" Acme kitchen 4999 3
create CHK-KETT-2 "Electric Kettle" Muller kitchen 3999 0
create CHK-LAMP-1 "Desk Lamp & Shade" Lumen furniture 10000 1
create CHK-TELE-1 "Television Stand" Lumen furniture 19900 2
pass "6 products, last at position $POSITION"

# `search CURL_ARGS…`: the /api/search answer once the search index has applied POSITION
# (the API answers 503 while it has not, after waiting 2 s).
search() {
    local status
    for _ in $(seq 1 15); do
        status=$(curl -sS -o "$DATA_DIR/answer.json" -w '%{http_code}' -G "$BASE/api/search" \
            -H "X-Min-Position: $POSITION" "$@")
        case "$status" in
            200) cat "$DATA_DIR/answer.json"; return ;;
            503) sleep 1 ;;
            *) fail "/api/search $* answered $status: $(cat "$DATA_DIR/answer.json")" ;;
        esac
    done
    fail "/api/search $* was not up to position $POSITION within 45 s: $(cat "$DATA_DIR/answer.json")"
}
skus() { json '" ".join(item["sku"] for item in d["items"])'; }

step "Searches"
found=$(search --data-urlencode 'q=gaming laptpo' | skus)
[ "$found" = CHK-LAPT-1 ] || fail "'gaming laptpo' (typo in the last word) found '$found', not CHK-LAPT-1"
pass "'gaming laptpo' finds the gaming laptop"
found=$(search --data-urlencode 'q=gooseneck kettel' | skus)
[ "$found" = CHK-KETT-1 ] || fail "'gooseneck kettel' found '$found', not CHK-KETT-1"
pass "'gooseneck kettel' finds the gooseneck kettle"
found=$(search --data-urlencode 'q=offi' | skus)
[ "$found" = CHK-LAPT-2 ] || fail "'offi' (a prefix) found '$found', not CHK-LAPT-2"
pass "'offi' finds the office laptop as a prefix"
found=$(search --data-urlencode 'q=kettle lamp' | python3 -c 'import json,sys; print(" ".join(sorted(i["sku"] for i in json.load(sys.stdin)["items"])))')
[ "$found" = "CHK-KETT-1 CHK-KETT-2 CHK-LAMP-1" ] || fail "'kettle lamp' (any-word fallback) found '$found'"
pass "'kettle lamp' falls back to any word"
found=$(search --data-urlencode 'q=chk-kett-2' | json 'd["items"][0]["sku"]')
[ "$found" = CHK-KETT-2 ] || fail "the SKU chk-kett-2 found '$found' first"
pass "a SKU finds its product first"

answer=$(search --data-urlencode 'q=kettle' --data-urlencode 'brand=Acme')
[ "$(echo "$answer" | skus)" = CHK-KETT-1 ] || fail "brand=Acme kept '$(echo "$answer" | skus)'"
facet=$(echo "$answer" | json 'd["facets"]["brand"].get("Muller")')
[ "$facet" = 1 ] || fail "the brand facet ignores its own filter: Muller should count 1, counts $facet"
pass "brand=Acme filters the hits, the brand facet still counts Muller"
answer=$(search --data-urlencode 'q=kettle' --data-urlencode 'in_stock=true')
[ "$(echo "$answer" | skus)" = CHK-KETT-1 ] || fail "in_stock=true kept '$(echo "$answer" | skus)'"
pass "in_stock=true leaves out the kettle out of stock"

highlight=$(search --data-urlencode 'q=shade' | json 'd["items"][0]["highlight"]["name"]')
[ "$highlight" = "Desk Lamp &amp; <em>Shade</em>" ] || fail "highlight of 'shade' is '$highlight', not HTML-escaped with <em>"
pass "highlights are HTML-escaped"

answer=$(search --data-urlencode 'q=lamb')
[ "$(echo "$answer" | json 'd["total"]')" = 0 ] || fail "'lamb' (four letters: no typo allowed) found something"
meant=$(echo "$answer" | json 'd.get("did_you_mean", "(absent)")')
if [ "$meant" = "(absent)" ]; then
    printf '  NOT CHECKED: this build'"'"'s /api/search does not answer did_you_mean yet\n'
else
    [ "$meant" = lamp ] || fail "'lamb' should say did_you_mean 'lamp', says '$meant'"
    pass "'lamb' says did you mean 'lamp'"
fi

step "OpenSearch's own answers for the fields suggestions and did-you-mean read"
words=$(curl -fsS "$OPENSEARCH_URL/catalog-products/_search" -H 'content-type: application/json' \
    -d '{"size":0,"aggs":{"w":{"terms":{"field":"name.words","include":"ket.*"}}}}' \
    | json '" ".join(b["key"] for b in d["aggregations"]["w"]["buckets"])')
[ "$words" = kettle ] || fail "a terms aggregation over name.words gave '$words', not 'kettle'"
pass "name.words aggregates whole words"
corrected=$(curl -fsS "$OPENSEARCH_URL/catalog-products/_search" -H 'content-type: application/json' \
    -d '{"size":0,"suggest":{"text":"lamb","name":{"term":{"field":"name.words","suggest_mode":"missing"}}}}' \
    | json '" ".join(o["text"] for o in d["suggest"]["name"][0]["options"])')
[ "${corrected%% *}" = lamp ] || fail "the term suggester corrects 'lamb' to '$corrected', not 'lamp' first"
pass "the term suggester corrects 'lamb' to 'lamp'"

step "Suggestions"
status=$(curl -sS -o "$DATA_DIR/suggest.json" -w '%{http_code}' -G "$BASE/api/search/suggest" --data-urlencode 'q=gooseneck ket' -d limit=5)
if [ "$status" = 404 ]; then
    printf '  NOT CHECKED: this build has no /api/search/suggest route (404)\n'
else
    [ "$status" = 200 ] || fail "/api/search/suggest answered $status: $(cat "$DATA_DIR/suggest.json")"
    first=$(json 'd["queries"][0] if d["queries"] else ""' <"$DATA_DIR/suggest.json")
    [ "$first" = "gooseneck kettle" ] || fail "suggestions for 'gooseneck ket' begin with '$first'"
    pass "'gooseneck ket' completes to 'gooseneck kettle'"
fi

step "Synonyms"
status=$(curl -sS -o "$DATA_DIR/synonyms.json" -w '%{http_code}' -X PUT "$BASE/api/search/synonyms" "${auth[@]}" \
    -d '{"groups": [["tv", "television"]]}')
if [ "$status" = 404 ] || [ "$status" = 405 ]; then
    printf '  NOT CHECKED: this build has no PUT /api/search/synonyms route (%s)\n' "$status"
else
    [ "$status" = 200 ] || fail "PUT /api/search/synonyms answered $status: $(cat "$DATA_DIR/synonyms.json")"
    POSITION=$(json 'd["position"]' <"$DATA_DIR/synonyms.json")
    found=$(search --data-urlencode 'q=tv stand' | skus)
    [ "$found" = CHK-TELE-1 ] || fail "'tv stand' with tv = television found '$found'"
    pass "'tv stand' finds the television stand"
fi

printf '\nopensearch-check: every check passed against OpenSearch %s\n' "$version"
