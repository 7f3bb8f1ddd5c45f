#!/bin/bash
# The replica: copy the primary once (pg_basebackup -R writes standby.signal and the
# connection), then run as a hot standby.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_basebackup -h postgres -U postgres -D "$PGDATA" -R -X stream -c fast; do
        echo "waiting for the primary"; sleep 1
    done
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
