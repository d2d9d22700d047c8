#!/usr/bin/env bash
# CPU per request of two flexgate binaries, measured in alternation so both see the same
# machine: on a shared host a change smaller than the run-to-run noise shows only in
# pairs taken back to back.
#
#   benches/ab.sh ROUNDS BIN_A BIN_B
#
# Either BIN may end in @N to run it with `server.threads = N` (otherwise the default,
# one per CPU): `benches/ab.sh 3 target/release/flexgate@1 target/release/flexgate@2`.
#
# Each round starts `BIN serve` (log info) in front of one simulator (zero latency) on
# 127.0.0.1 port 0, warms it with 5,000 requests, then sends 60,000 of the benchmark's
# 2.1 KB chat request at 32 connections through the flex lane, and prints the process's
# user and system time per request from /proc. Needs oha (benches/run.sh installs it;
# set OHA to use another) and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 3 ] || { sed -n '2,15p' "$0"; exit 2; }
rounds="$1" a="$2" b="$3"
target="${CARGO_TARGET_DIR:-$PWD/target}"
oha="${OHA:-$(command -v oha || echo "${FLEXGATE_BENCH_TOOLS:-$target/bench-tools}/bin/oha")}"
[ -x "$oha" ] || { echo "ab.sh: no oha (run benches/run.sh once, or set OHA)" >&2; exit 2; }
requests=60000
tick="$(getconf CLK_TCK)"

dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

ticket="$(for _ in $(seq 18); do printf 'Please summarise the following support ticket in three bullet points and flag anything urgent. '; done)"
printf '{"model":"gpt-5-mini","messages":[{"role":"system","content":"You are a concise support assistant."},{"role":"user","content":"%s"}],"max_completion_tokens":64,"stream":false,"user":"bench"}' \
    "$ticket" > "$dir/body.json"

address_in() {
    for _ in $(seq 300); do
        if a="$(grep -ho "$2" "$1" 2>/dev/null | grep -o '127.0.0.1:[0-9]\+' | head -1)" && [ -n "$a" ]; then echo "$a"; return; fi
        sleep 0.1
    done
    echo "ab.sh: no address in $1" >&2; cat "$1" >&2; exit 1
}

"${a%@*}" sim --listen 127.0.0.1:0 --latency-standard 0ms --latency-priority 0ms --latency-flex 0ms \
    --chunk-interval 0ms > "$dir/sim.log" 2>&1 &
pids+=($!)
sim="$(address_in "$dir/sim.log" 'listening.*')"
# The config for a BIN[@threads] argument.
config_for() {
    local threads=0
    case "$1" in *@*) threads="${1##*@}" ;; esac
    printf '[server]\nlisten = "127.0.0.1:0"\nthreads = %s\n[upstream]\nbase_url = "http://%s/v1"\n[log]\nformat = "json"\nlevel = "info"\n' \
        "$threads" "$sim" > "$dir/gw.toml"
}

printf '%-6s %-40s %9s %9s %9s %9s\n' round binary "us/req" "user" "system" "req/s"
for round in $(seq "$rounds"); do
    for bin in "$a" "$b"; do
        : > "$dir/gw.log"
        config_for "$bin"
        "${bin%@*}" serve --config "$dir/gw.toml" > /dev/null 2> "$dir/gw.log" &
        gw=$!
        url="http://$(address_in "$dir/gw.log" '"listening".*')/flex/v1/chat/completions"
        load() {
            "$oha" -n "$1" -c 32 --no-tui -m POST -H 'authorization: Bearer bench' \
                -H 'content-type: application/json' -D "$dir/body.json" "$url"
        }
        load 5000 > /dev/null
        read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$gw/stat")
        summary="$(load "$requests")"
        read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$gw/stat")
        kill -INT "$gw"; wait "$gw" || true
        echo "$summary" | grep -qE '^\s+\[200\] '"$requests"' responses' || { echo "ab.sh: not every answer was a 200" >&2; echo "$summary" >&2; exit 1; }
        per() { echo "scale=1; $1 * 1000000 / $tick / $requests" | bc; }
        rps="$(echo "$summary" | awk '/Requests\/sec/ {printf "%.0f", $2}')"
        printf '%-6s %-40s %9s %9s %9s %9s\n' "$round" "$bin" "$(per $((u1 - u0 + s1 - s0)))" "$(per $((u1 - u0)))" "$(per $((s1 - s0)))" "$rps"
    done
done
