#!/usr/bin/env bash
# WebSocket sessions through flexgate (targets: under 64 KiB per idle session, under
# 50 µs of CPU per relayed frame). Starts `flexgate sim` and a one-thread gateway on
# loopback, then: opens SESSIONS (default 1000) Realtime sessions and prints the gateway's
# resident-memory growth per session (idle_sessions.py); and relays frames each way on
# one session through the gateway and through a floor (socat relaying the bytes),
# alternately, and prints the CPU time per frame of each and their ratio (frames.py).
#   benches/websocket/run.sh                       # target/release/flexgate
#   FLEXGATE_BIN=target/debug/flexgate SESSIONS=500 ROUNDS=1 benches/websocket/run.sh
#   CALLGRIND=1 benches/websocket/run.sh           # instructions per lockstep turn instead
# Python's `websockets` comes from the SDK suite's environment (tests/sdk/run.sh builds it);
# socat from the system's packages (apt-get install socat).
set -euo pipefail

cd "$(dirname "$0")/../.."
BIN=${FLEXGATE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/flexgate}
PY=${PYTHON:-$PWD/.tools/venv-sdk/bin/python}
SESSIONS=${SESSIONS:-1000}
[[ -x "$BIN" ]] || { echo "no flexgate binary at $BIN (build it, or set FLEXGATE_BIN)" >&2; exit 2; }
[[ -x "$PY" ]] || { echo "no Python with websockets at $PY (run tests/sdk/run.sh once, or set PYTHON)" >&2; exit 2; }
command -v socat >/dev/null || { echo "no socat for the floor (apt-get install socat)" >&2; exit 2; }
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
if [[ -n "${CALLGRIND:-}" ]]; then
    # flexgate's user-space instructions per lockstep turn (one session of TURNS turns),
    # repeatable where CPU time on a shared machine is not; the kernel's share is not seen.
    TURNS=${TURNS:-500}
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
        "$BIN" serve --config "$WORK/flexgate.toml" 2>"$WORK/flexgate.log" &
    PIDS+=($!)
    GW=$(address "$WORK/flexgate.log" '"listening"')
    callgrind_control --zero "${PIDS[-1]}" >/dev/null 2>&1
    FRAMES=1 TURNS=$TURNS "$PY" benches/websocket/frames.py "$GW" "${PIDS[-1]}"
    callgrind_control --dump "${PIDS[-1]}" >/dev/null 2>&1
    total=$(grep -h '^totals:' "$WORK"/cg.out.* | awk '{print $2}')
    echo "$TURNS lockstep turns: $((total / TURNS)) instructions per turn in flexgate's user space"
    exit 0
fi
"$BIN" serve --config "$WORK/flexgate.toml" 2>"$WORK/flexgate.log" &
PIDS+=($!)
GW=$(address "$WORK/flexgate.log" '"listening"')
"$PY" benches/websocket/idle_sessions.py "$GW" "${PIDS[-1]}" "$SESSIONS"
"$PY" benches/websocket/frames.py "$GW" "${PIDS[-1]}" "$SIM"
