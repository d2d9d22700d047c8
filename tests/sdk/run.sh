#!/usr/bin/env bash
# The official OpenAI SDKs (Python `openai` from PyPI, Node `openai` from npm, both
# pinned) against a real flexgate binary with `flexgate sim` as its upstream.
#
#   tests/sdk/run.sh                      # uses target/release/flexgate
#   FLEXGATE_BIN=target/debug/flexgate tests/sdk/run.sh
#   PYTEST_ARGS="-k deadline" tests/sdk/run.sh      # extra pytest arguments
#
# Installs what it needs on first use (idempotent): a virtual environment under
# .tools/venv-sdk with the pinned Python packages, and tests/sdk/node/node_modules from
# the committed package-lock.json. Starts the simulator and the gateway on free ports,
# runs pytest and `node --test` against them, stops both on exit, and exits non-zero if
# either suite failed. Both suites run even when the first one fails, so CI sees both
# summary lines.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${FLEXGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/flexgate}
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
if [[ ! -x "$BIN" ]]; then
    echo "tests/sdk/run.sh: no flexgate binary at $BIN (build it, or set FLEXGATE_BIN)" >&2
    exit 2
fi
cd "$ROOT"

# --- tools -------------------------------------------------------------------------
VENV="$ROOT/.tools/venv-sdk"
PY_REQ="$HERE/python/requirements.txt"
PY_LOCK="$HERE/python/constraints.txt"
py_stamp=$(cat "$PY_REQ" "$PY_LOCK" | sha256sum | cut -d' ' -f1)
if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.stamp" 2>/dev/null)" != "$py_stamp" ]]; then
    echo "--- installing the Python SDK into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY_REQ" -c "$PY_LOCK"
    echo "$py_stamp" >"$VENV/.stamp"
fi

NODE_DIR="$HERE/node"
node_stamp=$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)
if [[ "$(cat "$NODE_DIR/node_modules/.stamp" 2>/dev/null)" != "$node_stamp" ]]; then
    echo "--- installing the Node SDK into $NODE_DIR/node_modules"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$node_stamp" >"$NODE_DIR/node_modules/.stamp"
fi
echo "--- python $("$VENV/bin/python" -c 'import openai; print(openai.__version__)') sdk," \
    "node $(node --version) sdk $(node -p 'require("./tests/sdk/node/node_modules/openai/package.json").version')"

# --- processes ---------------------------------------------------------------------
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# Poll a log file until a line with $2 names a 127.0.0.1 address; print the address.
wait_for_address() {
    local log=$1 needle=$2 pid=$3 line
    for _ in $(seq 300); do
        line=$(grep -a -- "$needle" "$log" 2>/dev/null | head -n1 || true)
        if [[ -n "$line" ]]; then
            grep -ao '127\.0\.0\.1:[0-9]\+' <<<"$line" | head -n1
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid exited before listening:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$needle' in $log" >&2
    cat "$log" >&2
    return 1
}

# Flex is fast and reliable by default here; tests script slowness and 429s per request
# with `x-sim-fault`, so each case is deterministic.
"$BIN" sim --listen 127.0.0.1:0 --latency-standard 10ms --latency-flex 50ms --chunk-interval 2ms \
    2>"$WORK/sim.log" &
PIDS+=($!)
SIM_ADDR=$(wait_for_address "$WORK/sim.log" "listening" "${PIDS[-1]}")

cat >"$WORK/flexgate.toml" <<EOF
[server]
listen = "127.0.0.1:0"
[upstream]
base_url = "http://$SIM_ADDR/v1"
[retry]
# Short backoff keeps the exhausted-retry cases fast; the counts are what is tested.
base_delay = "20ms"
max_delay = "200ms"
[log]
format = "json"
level = "warn,flexgate=info"
EOF
"$BIN" serve --config "$WORK/flexgate.toml" 2>"$WORK/flexgate.log" &
PIDS+=($!)
GW_ADDR=$(wait_for_address "$WORK/flexgate.log" '"listening"' "${PIDS[-1]}")
echo "--- sim http://$SIM_ADDR, flexgate http://$GW_ADDR ($BIN)"

export FLEXGATE_URL="http://$GW_ADDR" SIM_URL="http://$SIM_ADDR" PYTHONDONTWRITEBYTECODE=1
# The SDKs must talk to the loopback gateway directly, whatever proxy the shell has.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset OPENAI_API_KEY OPENAI_BASE_URL OPENAI_ORG_ID OPENAI_PROJECT_ID

status=0
echo "=== pytest tests/sdk/python"
"$VENV/bin/python" -m pytest "$HERE/python" -q -p no:cacheprovider -rfE ${PYTEST_ARGS:-} || status=1
echo "=== node --test tests/sdk/node"
(cd "$NODE_DIR" && node --test --test-reporter=spec test/*.test.mjs) || status=1

if [[ $status -ne 0 ]]; then
    echo "--- flexgate log (last 40 lines)"
    tail -n 40 "$WORK/flexgate.log"
fi
exit $status
