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
# docs/reliability.md describes the matrix. A full run (no ELASTICRDS_FAULTS_ONLY) records its
# counts in tests/golden/faults-summary.json, from which scripts/gen-docs writes the summary line
# in README.md and docs/reliability.md (the golden test fails until they are regenerated).
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

RECORD="tests/golden/faults-summary.json"
[[ -n "${ELASTICRDS_FAULTS_ONLY:-}" ]] && RECORD=""
line="$(python3 - "$SUMMARY" "$RECORD" <<'EOF'
import json, sys
n = d = l = f = c = t = 0
by_test = {}
for raw in open(sys.argv[1]):
    raw = raw.strip()
    if not raw:
        continue
    o = json.loads(raw)
    n += o["injected"]; d += o["duplicates"]; l += o["lost"]; f += o["foreign"]
    c += 1 if o["converged"] else 0
    t += 1
    by_test[o["test"]] = by_test.get(o["test"], 0) + 1
if sys.argv[2] and not (d or l or f or c < t):
    # Only a passing run is recorded.
    record = {
        "about": "written by the last full run of scripts/faults.sh; scripts/gen-docs puts the line into README.md and docs/reliability.md",
        "injected": n, "duplicates": d, "lost_actions": l, "foreign_touched": f,
        "converged": c, "scenarios": t, "by_test": dict(sorted(by_test.items())),
    }
    with open(sys.argv[2], "w") as out:
        out.write(json.dumps(record, indent=2) + "\n")
print(f"faults: {n} injected, {d} duplicates, {l} lost actions, {f} foreign touched, {c} converged/{t}")
EOF
)"
read -r n d l f c t <<<"$(sed -E 's/faults: ([0-9]+) injected, ([0-9]+) duplicates, ([0-9]+) lost actions, ([0-9]+) foreign touched, ([0-9]+) converged\/([0-9]+)/\1 \2 \3 \4 \5 \6/' <<<"$line")"
if (( d > 0 || l > 0 || f > 0 || c < t )); then status=1; fi
echo "$line"
exit "$status"
