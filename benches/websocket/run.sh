#!/usr/bin/env bash
# WebSocket sessions through flexgate (targets: under 64 KiB per idle session, under
# 50 µs of CPU per relayed frame). Starts `flexgate sim` and a one-thread gateway on
# loopback, then: opens SESSIONS (default 1000) Realtime sessions and prints the gateway's
# resident-memory growth per session (idle_sessions.py); and relays small frames each
# way on one session and prints the gateway's CPU time per frame (frames.py).
#   benches/websocket/run.sh                       # target/release/flexgate
#   FLEXGATE_BIN=target/debug/flexgate SESSIONS=500 benches/websocket/run.sh
# Python's `websockets` comes from the SDK suite's environment (tests/sdk/run.sh builds it).
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN=${FLEXGATE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/flexgate}
PY=${PYTHON:-$PWD/.tools/venv-sdk/bin/python}
SESSIONS=${SESSIONS:-1000}
[[ -x "$BIN" ]] || { echo "no flexgate binary at $BIN (build it, or set FLEXGATE_BIN)" >&2; exit 2; }
[[ -x "$PY" ]] || { echo "no Python with websockets at $PY (run tests/sdk/run.sh once, or set PYTHON)" >&2; exit 2; }
ulimit -n 8192

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

address() {
    for _ in $(seq 300); do
        if grep -aq "$2" "$1"; then
            grep -a "$2" "$1" | grep -ao '127\.0\.0\.1:[0-9]\+' | head -n1
            return 0
        fi
        sleep 0.1
    done
    cat "$1" >&2
    return 1
}

"$BIN" sim --listen 127.0.0.1:0 2>"$WORK/sim.log" &
PIDS+=($!)
SIM=$(address "$WORK/sim.log" listening)
printf '[server]\nlisten = "127.0.0.1:0"\nthreads = 1\n[upstream]\nbase_url = "http://%s/v1"\n[log]\nlevel = "warn,flexgate=info"\n' \
    "$SIM" >"$WORK/flexgate.toml"
"$BIN" serve --config "$WORK/flexgate.toml" 2>"$WORK/flexgate.log" &
PIDS+=($!)
GW=$(address "$WORK/flexgate.log" '"listening"')
"$PY" benches/websocket/idle_sessions.py "$GW" "${PIDS[-1]}" "$SESSIONS"
"$PY" benches/websocket/frames.py "$GW" "${PIDS[-1]}"
