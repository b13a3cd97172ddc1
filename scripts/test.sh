#!/usr/bin/env bash
# The project's one test command: `scripts/test.sh`.
#
# Idempotent, for a fresh Debian machine as root:
#   1. a repo-local virtualenv .venv/ with the pinned emulators from scripts/requirements-test.txt
#      (moto server for RDS, ministack for CloudWatch); skipped when its stamp matches the file's hash;
#   2. Debian packages haproxy, prometheus (brings promtool), chromium and tidy (the status
#      page's browser test) when missing; the services are never started (the tests start
#      their own copies on 127.0.0.1 random ports);
#   3. `cargo test --all-targets` and `cargo test --doc` (dev profile, --no-fail-fast), then
#      scripts/faults.sh (the fault matrix; its absence fails the run).
# Exits non-zero on any failure. `scripts/test.sh --setup-only` does steps 1 and 2 only.
set -euo pipefail
SETUP_ONLY=""
if [[ "${1:-}" == "--setup-only" ]]; then SETUP_ONLY=1; fi
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
START=$(date +%s)
# haproxy lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

step() { printf '\n==> [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

if [[ -n "${CI:-}" ]]; then export CI; fi

# ---------------------------------------------------------------- 1. python emulators
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements-test.txt"
STAMP="$VENV/.requirements.sha256"
want_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want_hash" ]]; then
    step "python emulators: .venv up to date with scripts/requirements-test.txt"
else
    step "python emulators: creating .venv and installing scripts/requirements-test.txt"
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        step "installing python3-venv (Debian)"
        apt-get update
        apt-get install -y --no-install-recommends python3-venv
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want_hash" > "$STAMP"
fi
"$VENV/bin/python" -m pip --disable-pip-version-check list 2>/dev/null \
    | grep -Ei '^(moto|ministack|cbor2) ' | sed 's/^/    /'

# ---------------------------------------------------------------- 2. debian packages
# Pids of prometheus/haproxy processes listening on a non-loopback address.
package_daemons() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -ltnpH 2>/dev/null | awk '$4 !~ /^(127\.|\[::1\])/ && /"(prometheus|haproxy)"/' \
        | grep -oE '"(prometheus|haproxy)",pid=[0-9]+' | grep -oE '[0-9]+$' | sort -u || true
}
missing=()
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# The status page's browser test: headless Chromium and tidy (HTML checker).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v tidy >/dev/null 2>&1 || missing+=(tidy)
if ((${#missing[@]})); then
    step "debian packages: installing ${missing[*]} (services are not started)"
    # policy-rc.d exit 101 tells invoke-rc.d not to start services from package scripts.
    made_policy=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    trap '[[ -z "${made_policy:-}" ]] || rm -f /usr/sbin/policy-rc.d' EXIT
    export DEBIAN_FRONTEND=noninteractive
    daemons_before="$(package_daemons)"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
    if [[ -n "$made_policy" ]]; then rm -f /usr/sbin/policy-rc.d; made_policy=""; fi
    # Belt and braces: if a package script started a daemon anyway (listening beyond
    # loopback), stop exactly that new pid; daemons that were running before are left alone.
    if command -v ss >/dev/null 2>&1; then
        for pid in $(package_daemons); do
            if ! grep -qx "$pid" <<<"$daemons_before"; then
                echo "    stopping pid $pid: started by the package install, listening beyond loopback"
                kill "$pid" 2>/dev/null || true
            fi
        done
    fi
else
    step "debian packages: haproxy, promtool, chromium and tidy present"
fi
echo "    $(haproxy -v 2>&1 | head -n1)"
echo "    $(promtool --version 2>&1 | head -n1)"

if [[ -n "$SETUP_ONLY" ]]; then step "setup done (--setup-only)"; exit 0; fi

# ---------------------------------------------------------------- 3. cargo test
# --no-fail-fast: run every test binary and report every failure, not just the first.
status=0
step "cargo test --all-targets (dev profile${CI:+, CI=$CI})"
cargo test --all-targets --no-fail-fast || status=1
step "cargo test --doc"
cargo test --doc --no-fail-fast || status=1

# The fault matrix is part of the suite: a missing script fails the run (it is run through
# bash, so a lost run bit cannot skip it silently).
step "scripts/faults.sh"
if [[ -f "$ROOT/scripts/faults.sh" ]]; then
    bash "$ROOT/scripts/faults.sh" || status=1
else
    echo "    scripts/faults.sh is missing: the fault matrix cannot run" >&2
    status=1
fi

if ((status)); then
    step "FAILED (see the failures above)"
    exit 1
fi
step "all tests passed"
