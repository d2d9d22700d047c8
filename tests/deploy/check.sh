#!/usr/bin/env bash
# Checks of the deployment artefacts (Dockerfile, deploy/**): what cannot be built or
# run on a machine without a Docker engine or a cluster is kept honest here.
#
#   tests/deploy/check.sh          (from any directory; safe to run again)
#
# Installs what it needs when missing:
#   - promtool, from Debian's `prometheus` package (apt-get; `apt-get update` only if
#     the package is not found). No Prometheus service is started or left running.
#   - a Python venv at .tools/venv-deploy with the pinned tools of
#     tests/deploy/requirements.txt (kubernetes-validate with its Kubernetes schemas,
#     check-jsonschema with the compose specification, the dockerfile parser, PyYAML).
#     Reinstalled only when requirements.txt changes. The checks themselves run offline.
#
# Checks: promtool check config / check rules / test rules; every Kubernetes manifest
# against the Kubernetes $K8S_VERSION schema in strict mode (the PodMonitor, a CRD,
# gets a structural check instead); compose against the compose specification and its
# references; the Grafana dashboard; the Dockerfile's structure and build command; the
# metrics the dashboard and the rules use against the metrics contract. See
# tests/deploy/validate.py for the list.
#
# Prints one line per check (ok / not ok / skip) and, last,
#   deploy checks: N passed, M failed[, K skipped]
# Exits 1 if any check failed.
set -euo pipefail

K8S_VERSION=1.33.0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
VENV=$ROOT/.tools/venv-deploy
REQUIREMENTS=$ROOT/tests/deploy/requirements.txt

passed=0
failed=0
skipped=0

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() {
    echo "not ok - $1"
    failed=$((failed + 1))
    if [[ -n ${2:-} ]]; then
        sed 's/^/    /' <<<"$2"
    fi
}

# run_check NAME COMMAND...: one check, passed when COMMAND exits 0.
run_check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$name"
    else
        not_ok "$name" "$out"
    fi
}

log() { echo "# $*"; }

# --- tools ------------------------------------------------------------------------

install_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    log "installing promtool (Debian package prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    # Keep the package's maintainer scripts from starting services, where nothing
    # else already does (a container's policy-rc.d usually does).
    local policy=/usr/sbin/policy-rc.d own_policy=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        own_policy=1
    fi
    local apt_ok=
    if apt-get install -y -q --no-install-recommends prometheus >/dev/null; then
        apt_ok=1
    elif apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; then
        apt_ok=1
    fi
    if [[ -n $own_policy ]]; then
        rm -f "$policy"
    fi
    # Where systemd runs, make sure the package left no service running or enabled.
    if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
    [[ -n $apt_ok ]] && command -v promtool >/dev/null 2>&1
}

install_venv() {
    local stamp=$VENV/.requirements.sha256 want
    want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
    if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    log "creating $VENV with the pinned tools of tests/deploy/requirements.txt"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-input -r "$REQUIREMENTS"
    echo "$want" >"$stamp"
}

if ! install_promtool; then
    not_ok "promtool is installed (apt-get install prometheus)"
fi
venv_log=$(mktemp)
if ! install_venv >"$venv_log" 2>&1; then
    not_ok "python tools are installed (tests/deploy/requirements.txt)" "$(tail -20 "$venv_log")"
fi
rm -f "$venv_log"

# --- promtool ---------------------------------------------------------------------

if command -v promtool >/dev/null 2>&1; then
    log "$(promtool --version 2>&1 | head -1)"
    run_check "promtool check config deploy/prometheus/prometheus.yml" \
        promtool check config deploy/prometheus/prometheus.yml
    run_check "promtool check rules deploy/prometheus/rules/*.rules.yml" \
        promtool check rules deploy/prometheus/rules/*.rules.yml
    run_check "promtool test rules deploy/prometheus/tests/*.yml" \
        promtool test rules deploy/prometheus/tests/*.yml
fi

# --- everything else (tests/deploy/validate.py) ------------------------------------

if [[ -x $VENV/bin/python ]] && command -v promtool >/dev/null 2>&1; then
    set +e
    out=$("$VENV/bin/python" tests/deploy/validate.py "$ROOT" "$K8S_VERSION" "$(command -v promtool)" 2>&1)
    status=$?
    set -e
    printf '%s\n' "$out"
    p=$(grep -c '^ok - ' <<<"$out" || true)
    f=$(grep -c '^not ok - ' <<<"$out" || true)
    s=$(grep -c '^skip - ' <<<"$out" || true)
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    if [[ $status -ne 0 && $f -eq 0 ]]; then
        not_ok "tests/deploy/validate.py ran to the end" "exit status $status"
    fi
else
    not_ok "tests/deploy/validate.py can run (needs the venv and promtool)"
fi

summary="deploy checks: $passed passed, $failed failed"
if [[ $skipped -gt 0 ]]; then
    summary+=", $skipped skipped"
fi
echo "$summary"
[[ $failed -eq 0 ]]
