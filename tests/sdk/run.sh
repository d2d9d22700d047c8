#!/usr/bin/env bash
# The official OpenAI SDKs (Python `openai` from PyPI, Node `openai` from npm, both
# pinned) and the frameworks built on them (LangChain's `langchain-openai`, the OpenAI
# Agents SDK `openai-agents`, pinned) against a real flexgate binary with `flexgate sim`
# as its upstream.
#
#   tests/sdk/run.sh                      # uses target/release/flexgate
#   FLEXGATE_BIN=target/debug/flexgate tests/sdk/run.sh
#   PYTEST_ARGS="-k deadline" tests/sdk/run.sh      # extra pytest arguments
#   SDK_SUITES="frameworks" tests/sdk/run.sh        # some of: python frameworks node
#
# Installs what it needs on first use (idempotent): virtual environments under
# .tools/venv-sdk and .tools/venv-frameworks with the pinned Python packages, and
# tests/sdk/node/node_modules from the committed package-lock.json. Starts the simulator
# and the gateway on free ports, runs the suites against them, stops both on exit, and
# exits non-zero if any suite failed. Every suite runs even when an earlier one fails,
# so CI sees every summary line.
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

SUITES=" ${SDK_SUITES:-python frameworks node} "
wants() { [[ "$SUITES" == *" $1 "* ]]; }

# --- tools -------------------------------------------------------------------------
# A virtual environment $1 with suite directory $2's pinned requirements, rebuilt when
# its requirements.txt or constraints.txt change.
python_env() {
    local venv=$1 req="$2/requirements.txt" lock="$2/constraints.txt" stamp
    stamp=$(cat "$req" "$lock" | sha256sum | cut -d' ' -f1)
    if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
        echo "--- installing $(grep -v '^#' "$req" | tr '\n' ' ')into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" -c "$lock"
        echo "$stamp" >"$venv/.stamp"
    fi
}
VENV="$ROOT/.tools/venv-sdk"
FW_VENV="$ROOT/.tools/venv-frameworks"
if wants python; then
    python_env "$VENV" "$HERE/python"
    echo "--- python sdk $("$VENV/bin/python" -c 'import openai; print(openai.__version__)')"
fi
if wants frameworks; then
    python_env "$FW_VENV" "$HERE/frameworks"
    echo "--- frameworks: $("$FW_VENV/bin/python" -m pip freeze --disable-pip-version-check |
        grep -E '^(openai|langchain-openai|langchain-core|openai-agents)==' | tr '\n' ' ')"
fi

NODE_DIR="$HERE/node"
if wants node; then
    node_stamp=$(sha256sum "$NODE_DIR/package-lock.json" | cut -d' ' -f1)
    if [[ "$(cat "$NODE_DIR/node_modules/.stamp" 2>/dev/null)" != "$node_stamp" ]]; then
        echo "--- installing the Node SDK into $NODE_DIR/node_modules"
        (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$node_stamp" >"$NODE_DIR/node_modules/.stamp"
    fi
    echo "--- node $(node --version) sdk $(node -p 'require("./tests/sdk/node/node_modules/openai/package.json").version')"
fi

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
[store]
# The Files and Batches API's store, thrown away with the run.
dir = "$WORK/store"
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

# A gateway in managed mode whose one client has a budget smaller than one request's estimate: the
# budget refusal as the SDKs see it (test_budgets.py).
cat >"$WORK/flexgate-budget.toml" <<EOF
[server]
listen = "127.0.0.1:0"
[upstream]
base_url = "http://$SIM_ADDR/v1"
[store]
dir = "$WORK/budget-store"
[auth]
mode = "managed"
[[auth.keys]]
client = "sdk-budget"
sha256 = "$(printf %s sk-sdk-budget | sha256sum | cut -d' ' -f1)"
[budgets.sdk-budget]
usd = "0.000001"
period = "day"
[log]
format = "json"
level = "warn,flexgate=info"
EOF
OPENAI_API_KEY=sk-sim "$BIN" serve --config "$WORK/flexgate-budget.toml" 2>"$WORK/flexgate-budget.log" &
PIDS+=($!)
BUDGET_ADDR=$(wait_for_address "$WORK/flexgate-budget.log" '"listening"' "${PIDS[-1]}")
export FLEXGATE_BUDGET_URL="http://$BUDGET_ADDR"

# The Node SDK's Realtime client always dials wss://: a second gateway serves TLS on its
# listener, with a certificate made for this run and trusted by the Node suite only.
if wants node; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
    sed -e "s|^listen = .*|listen = \"127.0.0.1:0\"\ntls_cert = \"$WORK/tls.crt\"\ntls_key = \"$WORK/tls.key\"|" \
        "$WORK/flexgate.toml" >"$WORK/flexgate-tls.toml"
    "$BIN" serve --config "$WORK/flexgate-tls.toml" 2>"$WORK/flexgate-tls.log" &
    PIDS+=($!)
    TLS_ADDR=$(wait_for_address "$WORK/flexgate-tls.log" '"listening"' "${PIDS[-1]}")
    export FLEXGATE_TLS_URL="https://$TLS_ADDR"
    echo "--- flexgate with TLS $FLEXGATE_TLS_URL"
fi

# FLEXGATE_BIN: for cases that start a gateway of their own (another auth mode, SIGTERM).
export FLEXGATE_URL="http://$GW_ADDR" SIM_URL="http://$SIM_ADDR" FLEXGATE_BIN="$BIN" PYTHONDONTWRITEBYTECODE=1
# The SDKs must talk to the loopback gateway directly, whatever proxy the shell has.
export NO_PROXY="127.0.0.1,localhost" no_proxy="127.0.0.1,localhost"
unset OPENAI_API_KEY OPENAI_BASE_URL OPENAI_ORG_ID OPENAI_PROJECT_ID

status=0
if wants python; then
    echo "=== pytest tests/sdk/python"
    "$VENV/bin/python" -m pytest "$HERE/python" -q -p no:cacheprovider -rfE ${PYTEST_ARGS:-} || status=1
fi
if wants frameworks; then
    echo "=== pytest tests/sdk/frameworks"
    "$FW_VENV/bin/python" -m pytest "$HERE/frameworks" -q -p no:cacheprovider -rfE ${PYTEST_ARGS:-} || status=1
fi
if wants node; then
    echo "=== node --test tests/sdk/node"
    (cd "$NODE_DIR" && NODE_EXTRA_CA_CERTS="$WORK/tls.crt" node --test --test-reporter=spec test/*.test.mjs) || status=1
fi

if [[ $status -ne 0 ]]; then
    echo "--- flexgate log (last 40 lines)"
    tail -n 40 "$WORK/flexgate.log"
fi
exit $status
