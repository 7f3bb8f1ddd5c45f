#!/bin/bash
# Runs once, when the primary initialises its data directory: allow the replica to stream.
set -e
echo "host replication all all trust" >> "$PGDATA/pg_hba.conf"
