#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, and every test of the workspace, against real
# engines. It first starts or installs what the tests need:
#
# - PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (started when they are down);
# - moto_server (SNS and SQS), installed into target/moto-venv from PyPI, on a free port;
# - the tansu Kafka broker, installed once with cargo into ~/.cache/catalog-tools (about ten
#   minutes the first time; CATALOG_TOOLS_DIR moves it), on a free port, for a second run of
#   the Kafka tests against a real broker process (the first run uses librdkafka's mock
#   cluster);
# - a streaming replica of that PostgreSQL on 127.0.0.1:5433 (pg_basebackup -R, run as the
#   postgres user under /var/lib/postgresql/catalog-test-replica);
# - a Redis Cluster of three masters on free loopback ports (redis-server, redis-cli --cluster
#   create), under target/redis-cluster;
# - Varnish with vmod xkey (Debian's varnish and varnish-modules) for the edge cache tests,
#   installed with apt-get when missing (the tests start their own varnishd on free ports);
# - HAProxy and Prometheus with promtool (Debian's haproxy and prometheus), installed with apt-get
#   when missing, for the operations tests (catalog/tests/operations: the balancer failover
#   under load, promtool over docker/prometheus, a real Prometheus scraping every role);
# - Chromium (Debian's chromium), installed with apt-get when missing, for scripts/docs-check.sh
#   (the API reference page rendered with no network, after the tests) and
#   scripts/browser-test.sh (the storefront and the admin console driven by playwright-core,
#   which npm installs into tests/browser/node_modules from its lock file);
# - cargo-deny (deny.toml), installed once with cargo into ~/.cache/catalog-tools like tansu;
#   it checks licences, duplicate versions and sources after clippy, and advisories when the
#   RustSec database can be fetched from GitHub (a line says so when it cannot);
# - cargo-fuzz, installed once the same way, for scripts/fuzz.sh (every fuzz target for a
#   bounded time, after the tests);
# - schemathesis, installed from PyPI into target/schemathesis-venv by scripts/schemathesis.sh,
#   which runs it against the embedded catalog's OpenAPI document (every check, 10 examples
#   per operation, a fixed seed so a run repeats, at most 300 s; SCHEMATHESIS_SEED and
#   SCHEMATHESIS_SECONDS change them).
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

# A free port p in 20000–29999 with p + 10000 free too (a Redis Cluster node's bus port).
free_cluster_port() {
    python3 -c '
import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 29999)
    if free(p) and free(p + 10000):
        print(p); break'
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
    for pid in ${MOTO_PID:-} ${TANSU_PID:-} ${CLUSTER_PIDS:-}; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# A clean build of every test needs about 6 GB under target/ (see [profile.dev] in Cargo.toml)
# plus a few GB in a temporary directory the first time tansu is installed. Say so up front rather
# than let the linker die half-way with a bus error on a full disk.
mkdir -p target
avail_kb=$(df -Pk target | awk 'NR == 2 { print $4 }')
if [ "${avail_kb:-0}" -lt $((9 * 1024 * 1024)) ]; then
    printf 'test.sh: warning: only %s MB free under target/; a clean run needs about 9 GB\n' \
        "$((avail_kb / 1024))" >&2
fi
# CI builds once from a clean clone: incremental compilation data would only take disk.
if [ "${CI:-}" = true ]; then
    export CARGO_INCREMENTAL=0
fi

step "PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)
    [ -n "$version" ] || fail "PostgreSQL is not installed; install postgresql and run it on 127.0.0.1:5432"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for_port 127.0.0.1 5432 30 || fail "PostgreSQL did not start on 127.0.0.1:5432: start it with pg_ctlcluster $version main start"
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null ||
    fail "PostgreSQL on 127.0.0.1:5432 refuses user postgres (the tests need trust or CATALOG_TEST_DATABASE_URL)"

step "PostgreSQL streaming replica on 127.0.0.1:5433"
if ! pg_isready -q -h 127.0.0.1 -p 5433; then
    version=$(ls /etc/postgresql | sort -n | tail -1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! grep -q '^host[[:space:]]\+replication' "$hba"; then
        echo "host replication all 127.0.0.1/32 trust" >>"$hba"
        psql -h 127.0.0.1 -U postgres -d postgres -qAtc 'select pg_reload_conf()' >/dev/null
    fi
    replica=/var/lib/postgresql/catalog-test-replica
    rm -rf "$replica"
    runuser -u postgres -- pg_basebackup -h 127.0.0.1 -p 5432 -U postgres -D "$replica" -R -X stream -c fast ||
        fail "pg_basebackup could not copy the primary for the replica"
    printf "port = 5433\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '/tmp'\nhot_standby = on\nmax_connections = 200\n" >"$replica/postgresql.conf"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$replica/pg_hba.conf"
    chown postgres:postgres "$replica/postgresql.conf" "$replica/pg_hba.conf"
    runuser -u postgres -- "/usr/lib/postgresql/$version/bin/pg_ctl" -D "$replica" \
        -l /var/lib/postgresql/catalog-test-replica.log -w start >/dev/null ||
        fail "the replica did not start (see /var/lib/postgresql/catalog-test-replica.log)"
fi
[ "$(psql -h 127.0.0.1 -p 5433 -U postgres -d postgres -Atc 'select pg_is_in_recovery()')" = t ] ||
    fail "127.0.0.1:5433 answers but is not a standby"
export CATALOG_TEST_REPLICA_URL=postgres://postgres@127.0.0.1:5433/postgres

step "Redis on 127.0.0.1:6379"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || fail "Redis is not installed; install redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    wait_for_port 127.0.0.1 6379 10 || fail "Redis did not start on 127.0.0.1:6379"
fi

step "Redis Cluster (three masters)"
rm -rf target/redis-cluster
CLUSTER_NODES=""
CLUSTER_PIDS=""
for _ in 1 2 3; do
    port=$(free_cluster_port)
    mkdir -p "target/redis-cluster/$port"
    redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$PWD/target/redis-cluster/$port/nodes.conf" \
        --dir "$PWD/target/redis-cluster/$port" --save "" --appendonly no \
        >"target/redis-cluster/$port/log" 2>&1 &
    CLUSTER_PIDS="$CLUSTER_PIDS $!"
    wait_for_port 127.0.0.1 "$port" 10 || fail "redis-server did not start on $port"
    CLUSTER_NODES="$CLUSTER_NODES 127.0.0.1:$port"
done
# shellcheck disable=SC2086
redis-cli --cluster create $CLUSTER_NODES --cluster-replicas 0 --cluster-yes >target/redis-cluster/create.log 2>&1 ||
    fail "redis-cli --cluster create failed (see target/redis-cluster/create.log)"
for _ in $(seq 1 50); do
    redis-cli -p "${CLUSTER_NODES##*:}" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.2
done
export CATALOG_TEST_REDIS_CLUSTER_URL="redis+cluster://$(echo $CLUSTER_NODES | tr ' ' ',')"

step "Varnish with vmod xkey (the edge cache tests)"
if ! command -v varnishd >/dev/null || ! compgen -G "/usr/lib/*/varnish/vmods/libvmod_xkey.so" >/dev/null; then
    command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] ||
        fail "Varnish is not installed; install Debian's varnish and varnish-modules (apt-get install varnish varnish-modules)"
    echo "installing varnish and varnish-modules with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q varnish varnish-modules >target/varnish-install.log 2>&1 ||
        { apt-get update -q >>target/varnish-install.log 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q varnish varnish-modules >>target/varnish-install.log 2>&1; } ||
        fail "cannot install varnish and varnish-modules with apt-get (see target/varnish-install.log)"
fi
varnishd -V 2>&1 | head -1

step "HAProxy and Prometheus (the operations tests)"
if ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ] || ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] ||
        fail "HAProxy or Prometheus is not installed; install Debian's haproxy and prometheus (apt-get install haproxy prometheus)"
    echo "installing haproxy and prometheus with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy prometheus >target/operations-install.log 2>&1 ||
        { apt-get update -q >>target/operations-install.log 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy prometheus >>target/operations-install.log 2>&1; } ||
        fail "cannot install haproxy and prometheus with apt-get (see target/operations-install.log)"
fi
# Debian's packages start both as services; the tests run their own on free ports.
for service in haproxy prometheus; do
    if pgrep -x "$service" >/dev/null && command -v service >/dev/null; then
        service "$service" stop >/dev/null 2>&1 || true
    fi
done
"$(command -v haproxy || echo /usr/sbin/haproxy)" -v | head -1
promtool --version 2>&1 | head -1

step "Chromium (the API reference page, rendered offline)"
if ! command -v chromium >/dev/null; then
    command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] ||
        fail "Chromium is not installed; install Debian's chromium (apt-get install chromium)"
    echo "installing chromium with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >target/chromium-install.log 2>&1 ||
        { apt-get update -q >>target/chromium-install.log 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >>target/chromium-install.log 2>&1; } ||
        fail "cannot install chromium with apt-get (see target/chromium-install.log)"
fi
chromium --version

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
# shellcheck source=scripts/cargo-tool.sh
source scripts/cargo-tool.sh
TANSU=$TOOLS_DIR/tansu/bin/tansu
if [ ! -x "$TANSU" ]; then
    echo "installing tansu into $TOOLS_DIR/tansu (once; about ten minutes)"
    cargo install tansu --locked --features dynostore --root "$TOOLS_DIR/tansu" ||
        fail "cannot install tansu with cargo"
fi
# The storm test starts brokers of its own from this binary (their logs in S3 on moto).
export CATALOG_TEST_TANSU="$TANSU"
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

step "cargo deny: licences, bans (duplicate versions), sources; advisories when the database can be fetched"
CARGO_DENY=$(cargo_tool cargo-deny 0.20.2) || fail "cannot install cargo-deny with cargo"
"$CARGO_DENY" --locked check --hide-inclusion-graph --show-stats licenses bans sources
# The advisory database is a git repository on GitHub (see deny.toml). Where it cannot be
# fetched, cargo deny check advisories fails without checking anything; say so rather than
# fail the run or pass silently.
if timeout 300 "$CARGO_DENY" --locked fetch db >target/cargo-deny-fetch.log 2>&1; then
    "$CARGO_DENY" --locked --offline check advisories
else
    printf 'test.sh: ADVISORIES NOT CHECKED: cannot fetch the RustSec advisory database (https://github.com/RustSec/advisory-db; see target/cargo-deny-fetch.log)\n' >&2
fi

step "cargo test (Kafka tests on librdkafka's mock cluster)"
cargo test --workspace --locked --no-fail-fast

step "cargo fuzz: every target for ${FUZZ_SECONDS:-20} s (scripts/fuzz.sh)"
scripts/fuzz.sh

step "The API reference page in headless Chromium with no network"
scripts/docs-check.sh

step "The storefront and the admin console in headless Chromium (scripts/browser-test.sh, playwright-core)"
scripts/browser-test.sh

step "Schemathesis: the OpenAPI document against the server, every check (scripts/schemathesis.sh, a fixed seed, at most ${SCHEMATHESIS_SECONDS:-300} s)"
BINARY=target/debug/catalog EXAMPLES=10 MAX_TIME="${SCHEMATHESIS_SECONDS:-300}" \
    SEED="${SCHEMATHESIS_SEED:-176853523516662504555054985212150200076}" scripts/schemathesis.sh

step "Kafka tests again, against the tansu broker on 127.0.0.1:$TANSU_PORT (the fault-injection tests named mock_cluster_* need the mock and ran above)"
CATALOG_TEST_KAFKA_BROKERS="127.0.0.1:$TANSU_PORT" \
    cargo test -p bus --test kafka --locked -- --skip mock_cluster
