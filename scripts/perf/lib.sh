# What the scripts of scripts/perf share; sourced, not run (from the repository's root).

# Load from one machine is one client: the per-client limits (README, "Security") would
# measure themselves, so the catalogs these scripts start run without them.
export CATALOG_RATE_LIMIT_AUTH=off CATALOG_RATE_LIMIT_WRITES=off CATALOG_RATE_LIMIT_READS=off
export CATALOG_MAX_CONNECTIONS_PER_ADDRESS=0 CATALOG_MAX_CONNECTIONS=19000

# Processes to stop when the script ends, however it ends.
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_ready() { # URL [seconds, default 120]
    for _ in $(seq $(( ${2:-120} * 10 ))); do
        curl -sf -o /dev/null "$1/readyz" && return 0
        sleep 0.1
    done
    echo "$1 never became ready" >&2
    return 1
}

# varnishd in the foreground with docker/varnish/catalog.vcl under $1 (its work dir, its
# backend.vcl, its log), listening on 127.0.0.1:$2, in front of 127.0.0.1:$3; further
# arguments go to varnishd. Its pid is in VARNISH_PID (and in PIDS).
start_varnish() { # dir, port, backend port, varnishd arguments...
    local dir=$1 port=$2 backend=$3
    shift 3
    mkdir -p "$dir/vcl"
    echo "backend query { .host = \"127.0.0.1\"; .port = \"$backend\"; }" > "$dir/vcl/backend.vcl"
    rm -rf "$dir/varnish"
    varnishd -F -j none -n "$dir/varnish" -a "127.0.0.1:$port" -f "$PWD/docker/varnish/catalog.vcl" \
        -p vcl_path="$dir/vcl:$PWD/docker/varnish" "$@" > "$dir/varnish.log" 2>&1 &
    VARNISH_PID=$!
    PIDS+=($VARNISH_PID)
}
