#!/usr/bin/env bash
# The API reference page renders offline: starts the catalog (the debug binary scripts/test.sh
# built; BINARY= names another), loads /api/docs in headless Chromium with every request but
# loopback sent to a dead proxy (so anything fetched from another origin fails), and checks
# that the operations of the OpenAPI document were rendered.
#
#   scripts/docs-check.sh            # after cargo test, or with BINARY=target/release/catalog
#
# Needs Debian's chromium (scripts/test.sh installs it). Loopback only; about 15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { printf 'docs-check: %s\n' "$*" >&2; exit 1; }
BINARY=${BINARY:-${CARGO_TARGET_DIR:-target}/debug/catalog}
[ -x "$BINARY" ] || fail "no catalog binary at $BINARY (run cargo test or cargo build first)"
command -v chromium >/dev/null || fail "chromium is not installed (apt-get install chromium)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
DIR=$(mktemp -d)
"$BINARY" --data-dir "$DIR/data" serve --listen "127.0.0.1:$PORT" >"$DIR/catalog.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { tail -20 "$DIR/catalog.log" >&2; fail "catalog serve exited"; }
    sleep 0.2
done
timeout 60 chromium --headless=new --no-sandbox --disable-gpu --user-data-dir="$DIR/profile" \
    --proxy-server=127.0.0.1:9 --proxy-bypass-list=127.0.0.1 --virtual-time-budget=10000 \
    --dump-dom "http://127.0.0.1:$PORT/api/docs" 2>"$DIR/chromium.log" >"$DIR/dom.html" ||
    { tail -20 "$DIR/chromium.log" >&2; fail "chromium failed"; }
rendered=$(grep -o 'class="opblock-summary-path" data-path="[^"]*"' "$DIR/dom.html" | sort -u | wc -l)
documented=$(curl -fsS "http://127.0.0.1:$PORT/api/openapi.json" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["paths"]))')
[ "$rendered" -ge "$documented" ] ||
    fail "the reference page rendered $rendered paths of the document's $documented (offline)"
echo "docs-check: /api/docs rendered all $rendered paths in headless Chromium with no network"
