#!/usr/bin/env bash
# The distributed catalog on one machine, behind HAProxy, in one command:
#
#   scripts/distributed.sh            # until Ctrl-C, which stops every process it started
#
# It builds the release binary, then starts a command process (127.0.0.1:8081, with the outbox
# relay), a projectors process (127.0.0.1:8083) and two query processes (127.0.0.1:8082 and
# 127.0.0.1:8084) on PostgreSQL, HAProxy in front of them with docker/haproxy/haproxy.cfg
# (http://127.0.0.1:8080, the one entry point; its stats on http://127.0.0.1:8404/stats), and,
# when Prometheus is installed, a Prometheus with docker/prometheus (http://127.0.0.1:9090)
# scraping every process and evaluating the alert rules.
#
# The engines come from the environment, as for `catalog serve`: DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/catalog, created when missing), and optionally
# DATABASE_READ_URL, REDIS_URL, CATALOG_BUS (without it the projectors follow the event store
# in PostgreSQL directly). CATALOG_ADMIN_EMAIL / CATALOG_ADMIN_PASSWORD default to
# admin@example.com / admin-password-123. Logs and the token key go to ./data-distributed.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'distributed.sh: %s\n' "$*" >&2; exit 1; }
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] ||
    fail "HAProxy is not installed: apt-get install haproxy"
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/catalog}
export CATALOG_ADMIN_EMAIL=${CATALOG_ADMIN_EMAIL:-admin@example.com}
export CATALOG_ADMIN_PASSWORD=${CATALOG_ADMIN_PASSWORD:-admin-password-123}
export CATALOG_DATA_DIR=${CATALOG_DATA_DIR:-$PWD/data-distributed}
# HAProxy is a trusted proxy: its X-Forwarded-For names the client for the rate limits.
export CATALOG_TRUSTED_PROXIES=${CATALOG_TRUSTED_PROXIES:-127.0.0.1/32}
mkdir -p "$CATALOG_DATA_DIR"
LOGS=$CATALOG_DATA_DIR

database=${DATABASE_URL##*/}
database=${database%%\?*}
server=${DATABASE_URL%/*}
psql "$server/postgres" -Atc "select 1 from pg_database where datname = '$database'" | grep -q 1 ||
    psql "$server/postgres" -qc "create database \"$database\"" ||
    fail "cannot reach or create the database of DATABASE_URL ($DATABASE_URL)"

cargo build --release --locked -p catalog
CATALOG=$PWD/target/release/catalog
"$CATALOG" migrate
if [ -n "${CATALOG_BUS:-}" ]; then "$CATALOG" bus setup; fi

PIDS=""
stop() {
    # SIGTERM: each process drains (its /readyz says so) and exits.
    # shellcheck disable=SC2086
    [ -z "$PIDS" ] || kill $PIDS 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

start() { # name role address
    "$CATALOG" serve --role "$2" --listen "$3" >"$LOGS/$1.log" 2>&1 &
    PIDS="$PIDS $!"
}
wait_ready() { # name address
    for _ in $(seq 1 300); do
        curl -fs "http://$2/readyz" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "$1 did not become ready on $2 (see $LOGS/$1.log)"
}

start command command 127.0.0.1:8081
wait_ready command 127.0.0.1:8081     # it makes the token key the others read
start projectors projectors 127.0.0.1:8083
start query-1 query 127.0.0.1:8082
start query-2 query 127.0.0.1:8084
wait_ready projectors 127.0.0.1:8083
wait_ready query-1 127.0.0.1:8082
wait_ready query-2 127.0.0.1:8084

CATALOG_HAPROXY_LISTEN=127.0.0.1:8080 CATALOG_HAPROXY_STATS=127.0.0.1:8404 \
    CATALOG_COMMAND_1=127.0.0.1:8081 CATALOG_COMMAND_2=127.0.0.1:8081 \
    CATALOG_QUERY_1=127.0.0.1:8082 CATALOG_QUERY_2=127.0.0.1:8084 \
    "$HAPROXY" -db -f docker/haproxy/haproxy.cfg >"$LOGS/haproxy.log" 2>&1 &
PIDS="$PIDS $!"
wait_ready haproxy 127.0.0.1:8080

if command -v prometheus >/dev/null; then
    monitoring=$LOGS/prometheus
    mkdir -p "$monitoring/rules" "$monitoring/targets"
    cp docker/prometheus/prometheus.yml "$monitoring/"
    cp docker/prometheus/rules/catalog.yml "$monitoring/rules/"
    cat >"$monitoring/targets/catalog-local.json" <<'EOF'
[
  {"targets": ["127.0.0.1:8081"], "labels": {"role": "command"}},
  {"targets": ["127.0.0.1:8083"], "labels": {"role": "projectors"}},
  {"targets": ["127.0.0.1:8082", "127.0.0.1:8084"], "labels": {"role": "query"}}
]
EOF
    echo '[{"targets": ["127.0.0.1:8404"], "labels": {"role": "balancer"}}]' \
        >"$monitoring/targets/haproxy-local.json"
    prometheus --config.file="$monitoring/prometheus.yml" --storage.tsdb.path="$monitoring/data" \
        --web.listen-address=127.0.0.1:9090 >"$LOGS/prometheus.log" 2>&1 &
    PIDS="$PIDS $!"
    echo "Prometheus:   http://127.0.0.1:9090 (alerts: /alerts)"
else
    echo "Prometheus is not installed (apt-get install prometheus): no monitoring"
fi
echo "The catalog:  http://127.0.0.1:8080 (HAProxy; stats at http://127.0.0.1:8404/stats)"
echo "Logs:         $LOGS/*.log; Ctrl-C stops everything"
wait
