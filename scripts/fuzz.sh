#!/usr/bin/env bash
# Runs every cargo fuzz target (fuzz/fuzz_targets: listing cursors, If-Match, the query strings
# of listings/searches/suggestions, bulk JSON and NDJSON bodies, bearer tokens and JWT headers,
# Forwarded/X-Forwarded-For, image uploads) for FUZZ_SECONDS each (default 20), from the seeds in fuzz/seeds.
# A target that panics or breaks one of its assertions stops the script; libFuzzer writes the
# input under fuzz/artifacts/<target>/ (reproduce: scripts/fuzz.sh <target> with that file's
# path as FUZZ_INPUT). Add what it found as a regression test in the crate that parses it.
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS each
#   scripts/fuzz.sh cursor jwt      # only these
#
# cargo-fuzz is installed once into ~/.cache/catalog-tools (CATALOG_TOOLS_DIR moves it).
# libFuzzer's instrumentation takes unstable compiler flags: the stable toolchain is told to
# accept them with RUSTC_BOOTSTRAP=1 (no nightly toolchain to install). No sanitizer: the
# targets are safe Rust, so AddressSanitizer would find nothing the panics do not, at twice the
# build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
fail() { printf 'fuzz.sh: %s\n' "$*" >&2; exit 1; }

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
# shellcheck source=scripts/cargo-tool.sh
source scripts/cargo-tool.sh
CARGO_FUZZ=$(cargo_tool cargo-fuzz 0.13.2) || fail "cannot install cargo-fuzz with cargo"
export RUSTC_BOOTSTRAP=1
TARGET_DIR=$ROOT/target/fuzz
# fuzz build|run ARGS…: cargo fuzz with this repository's fuzz dir, no sanitizer, one target dir.
fuzz() {
    local command=$1
    shift
    "$CARGO_FUZZ" "$command" --fuzz-dir "$ROOT/fuzz" --sanitizer none --target-dir "$TARGET_DIR" "$@"
}

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(find fuzz/fuzz_targets -name '*.rs' -printf '%f\n' | sed 's/\.rs$//' | sort)
fi
[ "${#TARGETS[@]}" -gt 0 ] || fail "no fuzz targets under fuzz/fuzz_targets"

fuzz build || fail "the fuzz targets do not build"
for target in "${TARGETS[@]}"; do
    [ -f "fuzz/fuzz_targets/$target.rs" ] || fail "no fuzz target $target (fuzz/fuzz_targets/$target.rs)"
    if [ -n "${FUZZ_INPUT:-}" ]; then
        fuzz run "$target" "$FUZZ_INPUT"
        continue
    fi
    corpus=$TARGET_DIR/corpus/$target
    mkdir -p "$corpus" "fuzz/seeds/$target"
    printf '\n--> %s for %s s\n' "$target" "$FUZZ_SECONDS"
    # -timeout: one input taking over 10 s is a finding (a request's cost must be bounded).
    fuzz run "$target" "$corpus" "$ROOT/fuzz/seeds/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 ||
        fail "fuzz target $target found a failure (its input is under fuzz/artifacts/$target/)"
done
