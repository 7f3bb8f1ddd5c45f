#!/usr/bin/env bash
# Schemathesis against the embedded catalog's own OpenAPI document: every operation, every
# check (all are on by default; schemathesis.toml holds the exclusions), an admin token,
# $EXAMPLES examples per operation. Installs schemathesis from PyPI into
# target/schemathesis-venv once. Prints schemathesis's report and exits with its status
# (non-zero when it finds anything: the document must say exactly what the server accepts).
# scripts/test.sh runs it with a fixed seed.
#
#   cargo build --release -p catalog && scripts/schemathesis.sh [more schemathesis run options]
#
# schemathesis.toml (read from the repository root) lists the checks narrowed, each on named
# operations, with the reason; scripts/schemathesis_hooks.py maps generated values to what the
# catalog's data allows. SEED repeats a run; WORKERS (2) sets its concurrency.
#
# Loopback only; bounded by --max-time (MAX_TIME, default 600 s).
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY=${BINARY:-${CARGO_TARGET_DIR:-target}/release/catalog}
EXAMPLES=${EXAMPLES:-40}
MAX_TIME=${MAX_TIME:-600}
fail() { printf 'schemathesis.sh: %s\n' "$*" >&2; exit 1; }
[ -x "$BINARY" ] || fail "no catalog binary at $BINARY (cargo build --release -p catalog)"
if [ ! -x target/schemathesis-venv/bin/schemathesis ]; then
    python3 -m venv target/schemathesis-venv
    target/schemathesis-venv/bin/pip install --quiet --disable-pip-version-check 'schemathesis==4.32.*' ||
        fail "cannot install schemathesis from PyPI into target/schemathesis-venv"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
DIR=$(mktemp -d)
# The limits would answer 429 to a fuzzer sending hundreds of requests a second.
CATALOG_RATE_LIMIT_AUTH=off CATALOG_RATE_LIMIT_WRITES=off CATALOG_RATE_LIMIT_READS=off \
    CATALOG_ADMIN_EMAIL=fuzz@example.com CATALOG_ADMIN_PASSWORD='fuzz password 123' \
    "$BINARY" --data-dir "$DIR/data" serve --demo --demo-products 50 --listen "127.0.0.1:$PORT" \
    >"$DIR/catalog.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null && break
    sleep 0.2
done
TOKEN=$(curl -fsS "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
    -d '{"email":"fuzz@example.com","password":"fuzz password 123"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# The token lives 15 minutes: longer than the run.
# scripts/schemathesis_hooks.py maps generated values to ones the catalog's data allows (an
# existing category, say): rules of the data no schema can say.
PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks \
    target/schemathesis-venv/bin/schemathesis run "http://127.0.0.1:$PORT/api/openapi.json" \
    --max-examples "$EXAMPLES" --max-time "$MAX_TIME" --workers "${WORKERS:-2}" \
    --header "Authorization: Bearer $TOKEN" --continue-on-failure --warnings off ${SEED:+--seed "$SEED"} "$@"
