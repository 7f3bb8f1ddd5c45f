#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, and every test of the workspace, against real
# engines. It first starts or installs what the tests need:
#
# - PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (started when they are down);
# - moto_server (SNS and SQS), installed into target/moto-venv from PyPI, on a free port;
# - the tansu Kafka broker, installed once with cargo into ~/.cache/catalog-tools (about ten
#   minutes the first time; CATALOG_TOOLS_DIR moves it), on a free port, for a second run of
#   the Kafka tests against a real broker process (the first run uses librdkafka's mock
#   cluster).
#
# Nothing is skipped silently: a missing engine that cannot be started stops the script with a
# line that says which and how to start it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # host port seconds
    local deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

cleanup() {
    local pid
    for pid in ${MOTO_PID:-} ${TANSU_PID:-}; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$version" ] || fail "PostgreSQL is not installed; install postgresql and run it on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for_port 127.0.0.1 5432 30 || fail "PostgreSQL did not start on 127.0.0.1:5432: start it with pg_ctlcluster $version main start"
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null ||
    fail "PostgreSQL on 127.0.0.1:5432 refuses user postgres (the tests need trust or CATALOG_TEST_DATABASE_URL)"

step "Redis on 127.0.0.1:6379"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || fail "Redis is not installed; install redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for_port 127.0.0.1 6379 10 || fail "Redis did not start on 127.0.0.1:6379"
fi

step "moto_server (SNS, SQS)"
if [ ! -x target/moto-venv/bin/moto_server ]; then
    mkdir -p target
    python3 -m venv target/moto-venv
    target/moto-venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]' ||
        fail "cannot install moto[server] from PyPI into target/moto-venv"
fi
MOTO_PORT=$(free_port)
target/moto-venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >target/moto.log 2>&1 &
MOTO_PID=$!
wait_for_port 127.0.0.1 "$MOTO_PORT" 60 || fail "moto_server did not start (see target/moto.log)"
export CATALOG_TEST_SQS_ENDPOINT="127.0.0.1:$MOTO_PORT"

step "tansu (a Kafka broker process)"
TOOLS_DIR=${CATALOG_TOOLS_DIR:-$HOME/.cache/catalog-tools}
TANSU=$TOOLS_DIR/tansu/bin/tansu
if [ ! -x "$TANSU" ]; then
    echo "installing tansu into $TOOLS_DIR/tansu (once; about ten minutes)"
    cargo install tansu --locked --features dynostore --root "$TOOLS_DIR/tansu" ||
        fail "cannot install tansu with cargo"
fi
TANSU_PORT=$(free_port)
"$TANSU" broker --listener-url "tcp://127.0.0.1:$TANSU_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
    --storage-engine memory://tansu/ >target/tansu.log 2>&1 &
TANSU_PID=$!
wait_for_port 127.0.0.1 "$TANSU_PORT" 30 || fail "tansu did not start (see target/tansu.log)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (Kafka tests on librdkafka's mock cluster)"
cargo test --workspace --locked --no-fail-fast

step "Kafka tests again, against the tansu broker on 127.0.0.1:$TANSU_PORT (the fault-injection tests named mock_cluster_* need the mock and ran above)"
CATALOG_TEST_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" \
    cargo test -p bus --test kafka --locked -- --skip mock_cluster
