#!/usr/bin/env bash
# The storm test for longer than scripts/test.sh runs it: writers using every command, kill -9
# of the command, projector and query processes with requests in flight, Redis killed and
# started empty, the replica cut off, the bus down (the SNS/SQS endpoint cut off; the Kafka
# broker process, tansu, killed and started again); at the end every view must equal the fold
# of the event store. Once per bus. Prints the counts (writes, lost answers, kills, outages).
#
#   scripts/storm.sh [SECONDS]   (default 600; CATALOG_STORM_SECONDS works too)
#
# Needs what scripts/test.sh starts: PostgreSQL on 5432 with its streaming replica on 5433,
# redis-server on the PATH; moto_server from target/moto-venv (or CATALOG_TEST_SQS_ENDPOINT);
# tansu where scripts/test.sh installs it (or CATALOG_TEST_TANSU).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-${CATALOG_STORM_SECONDS:-600}}
case $duration in
'' | *[!0-9]*) echo "storm.sh: SECONDS must be a whole number, not '$duration'" >&2; exit 2 ;;
esac
pg_isready -q -h 127.0.0.1 -p 5432 ||
    { echo "storm.sh: PostgreSQL is not running on 127.0.0.1:5432" >&2; exit 1; }
pg_isready -q -h 127.0.0.1 -p 5433 ||
    { echo "storm.sh: no replica on 127.0.0.1:5433; scripts/test.sh creates one (pg_basebackup -R)" >&2; exit 1; }
command -v redis-server >/dev/null ||
    { echo "storm.sh: redis-server is not installed (Debian: redis-server)" >&2; exit 1; }
echo "storm.sh: a storm of $duration s on each bus, one after the other (release build)"
CATALOG_STORM_SECONDS=$duration exec cargo test --release --locked -p catalog --test kill storm:: -- --nocapture --test-threads 1
