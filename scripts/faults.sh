#!/usr/bin/env bash
# The fault matrix and the crash test, in one command: `scripts/faults.sh`.
#
# Runs `cargo test --test faults --test crash -- --ignored` (dev profile, the same build as
# `cargo test`; these tests are #[ignore]d in the plain `cargo test` so they run once per
# scripts/test.sh). Each scenario appends its outcome to target/faults-summary.jsonl; this
# script adds them up and ends with exactly one line:
#   faults: N injected, D duplicates, L lost actions, F foreign touched, C converged/T
# It exits non-zero when a test failed, or D, L or F > 0, or C < T.
# Needs the emulators in .venv/ (scripts/test.sh --setup-only installs them).
# ELASTICRDS_FAULTS_PARALLEL (default 4) scenarios run at once; ELASTICRDS_FAULTS_ONLY=<substring>
# runs the matching scenarios only (debugging; the summary then covers those).
# docs/reliability.md describes the matrix and records the measured summary.
set -uo pipefail
cd "$(dirname "$0")/.."
SUMMARY="target/faults-summary.jsonl"
mkdir -p target
rm -f "$SUMMARY"
export ELASTICRDS_FAULTS_SUMMARY="$PWD/$SUMMARY"

status=0
cargo test --no-fail-fast --test faults --test crash -- --ignored --test-threads 2 || status=$?

if [[ ! -s "$SUMMARY" ]]; then
    echo "faults: 0 injected, 0 duplicates, 0 lost actions, 0 foreign touched, 0 converged/0"
    echo "scripts/faults.sh: no scenario reported an outcome" >&2
    exit 1
fi

line="$(python3 - "$SUMMARY" <<'EOF'
import json, sys
n = d = l = f = c = t = 0
for raw in open(sys.argv[1]):
    raw = raw.strip()
    if not raw:
        continue
    o = json.loads(raw)
    n += o["injected"]; d += o["duplicates"]; l += o["lost"]; f += o["foreign"]
    c += 1 if o["converged"] else 0
    t += 1
print(f"faults: {n} injected, {d} duplicates, {l} lost actions, {f} foreign touched, {c} converged/{t}")
EOF
)"
read -r n d l f c t <<<"$(sed -E 's/faults: ([0-9]+) injected, ([0-9]+) duplicates, ([0-9]+) lost actions, ([0-9]+) foreign touched, ([0-9]+) converged\/([0-9]+)/\1 \2 \3 \4 \5 \6/' <<<"$line")"
if (( d > 0 || l > 0 || f > 0 || c < t )); then status=1; fi
echo "$line"
exit "$status"
