#!/usr/bin/env bash
# Bounded fuzzing of the config and policy parsers: `scripts/fuzz.sh [SECONDS]` (default 60 per
# target). Ends with one line per target:
#   fuzz <target>: N executions in S s, 0 crashes
# and exits non-zero when a target crashed (the input is kept under fuzz/artifacts/<target>/).
#
# Needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz --locked`); the build (AddressSanitizer, its own target dir
# fuzz/target) takes several minutes the first time. The corpus grows in fuzz/corpus/<target>/
# (ignored by git), seeded from fuzz/seeds/<target>/.
#
# Without nightly or cargo-fuzz it runs the stable companion instead: the parser_fuzz property
# tests of tests/bad_input.rs (byte-level mutations of good inputs and random bytes through every
# parser of user files), with PROPTEST_CASES = 500 × SECONDS.
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
status=0

if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
    cargo +nightly fuzz build || exit 1
    summary=()
    for t in config policy; do
        mkdir -p "fuzz/corpus/$t"
        log="fuzz/target/fuzz-$t.log"
        cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
            -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
        rc=$?
        runs="$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1 \2/p' "$log" | tail -1)"
        read -r n s <<<"${runs:-0 0}"
        crashes=0
        if (( rc != 0 )); then
            crashes=1
            status=1
            tail -40 "$log" >&2
        fi
        summary+=("fuzz $t: $n executions in $s s, $crashes crashes")
    done
    printf '%s\n' "${summary[@]}"
else
    echo "scripts/fuzz.sh: no nightly toolchain or cargo-fuzz; running the stable companion" >&2
    cases=$((secs * 500))
    start=$(date +%s)
    PROPTEST_CASES="$cases" cargo test --test bad_input parser_fuzz || status=1
    echo "fuzz (stable, proptest): 2 × $cases cases in $(( $(date +%s) - start )) s, status $status"
fi
exit "$status"
