#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, and every test of the workspace.
#
# The embedded mode needs no external engine (SQLite is compiled in), so there is nothing
# to start for these tests. Engines that later tests need (PostgreSQL, Redis, Kafka, moto)
# are started or installed here, before the tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked --no-fail-fast
