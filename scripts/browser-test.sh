#!/usr/bin/env bash
# The storefront and the admin console in a real browser: starts the embedded catalog with
# its demo data (the debug binary scripts/test.sh built; BINARY= names another) and runs
# tests/browser/run.mjs, which drives Debian's chromium with playwright-core: a shopper
# browses, filters, pages, searches with a typo and opens a product; an admin logs in,
# changes a price and sees it on the storefront, uploads an image, imports a 1,000-row CSV
# and watches a live event arrive. Any console error, failed request or request to another
# host than 127.0.0.1 fails it. Screenshots of every step go to target/browser/.
#
#   scripts/browser-test.sh                      # after cargo build or cargo test
#   BINARY=target/release/catalog scripts/browser-test.sh
#
# Needs chromium (apt-get install chromium) and npm (installs playwright-core into
# tests/browser/node_modules from the lock file). Loopback only; about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { printf 'browser-test: %s\n' "$*" >&2; exit 1; }
BINARY=${BINARY:-${CARGO_TARGET_DIR:-target}/debug/catalog}
[ -x "$BINARY" ] || fail "no catalog binary at $BINARY (run cargo build first)"
CHROMIUM=${CHROMIUM:-$(command -v chromium || true)}
[ -n "$CHROMIUM" ] || fail "chromium is not installed (apt-get install chromium)"
command -v npm >/dev/null || fail "npm is not installed (apt-get install npm, or Node.js 18+)"
if [ ! -f tests/browser/node_modules/playwright-core/package.json ] ||
    [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error ||
        fail "cannot install playwright-core (npm ci in tests/browser)"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
DIR=$(mktemp -d)
SCREENSHOTS=${SCREENSHOTS:-target/browser}
rm -rf "$SCREENSHOTS"
mkdir -p "$SCREENSHOTS"
export CATALOG_ADMIN_EMAIL=admin@example.com
export CATALOG_ADMIN_PASSWORD="browser-test-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
"$BINARY" --data-dir "$DIR/data" serve --demo --listen "127.0.0.1:$PORT" >"$DIR/catalog.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; cp "$DIR/catalog.log" "$SCREENSHOTS/catalog.log" 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { tail -20 "$DIR/catalog.log" >&2; fail "catalog serve exited"; }
    sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" || fail "the catalog was not ready within 60 s"
CATALOG_URL="http://127.0.0.1:$PORT" CHROMIUM="$CHROMIUM" SCREENSHOTS="$SCREENSHOTS" \
    timeout 300 node tests/browser/run.mjs
