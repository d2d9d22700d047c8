#!/usr/bin/env bash
# Batch benchmark: the targets of flexgate's Files and Batches API on this machine.
#
#   benches/batch/run.sh                 # LINES=50000 RUN_LINES=10000 by default
#
# 1. Ingest: a LINES-line batch input file of about 100 MB (2 KB a line) is uploaded
#    with curl and validated; reported: seconds from the upload's start to the batch
#    being `in_progress` (every line checked and indexed), and the gateway's peak RSS.
# 2. Run: a RUN_LINES-line batch against the simulator with flex latency FLEX_LATENCY,
#    `batch.max_in_flight = IN_FLIGHT`; reported: wall time, lines per second, gateway
#    CPU per line, and the peak RSS over both phases.
# 3. The same RUN_LINES requests sent to /flex/v1/chat/completions by `flexgate replay`
#    (IN_FLIGHT at once), for the gateway's CPU per proxied request; the ratio is
#    reported.
#
# Needs curl, jq and bc; builds the release binary (not the test build), or measures
# FLEXGATE_BIN when set. Everything runs on
# loopback ports picked by the OS, in a scratch folder removed on exit.
set -euo pipefail

cd "$(dirname "$0")/../.."
LINES=${LINES:-50000}
RUN_LINES=${RUN_LINES:-10000}
FLEX_LATENCY=${FLEX_LATENCY:-200ms}
IN_FLIGHT=${IN_FLIGHT:-256}
target="${CARGO_TARGET_DIR:-$PWD/target}"
bin="${FLEXGATE_BIN:-$target/release/flexgate}"

if [[ -z "${FLEXGATE_BIN:-}" ]]; then
    echo "benches/batch/run.sh: building the release binary" >&2
    cargo build --release --locked --bin flexgate >&2
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_for_address() {
    local log=$1 needle=$2
    for _ in $(seq 300); do
        if grep -aq -- "$needle" "$log" 2>/dev/null; then
            grep -a -- "$needle" "$log" | head -n1 | grep -ao '127\.0\.0\.1:[0-9]\+' | head -n1
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$needle' in $log" >&2
    cat "$log" >&2
    return 1
}

# A Batch API file of $1 chat lines, each about 2 KB.
generate() {
    python3 - "$1" <<'PY'
import json, sys
pad = "lorem ipsum dolor sit amet " * 70
for i in range(int(sys.argv[1])):
    body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": f"{i}: {pad}"}]}
    print(json.dumps({"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}))
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

"$bin" sim --listen 127.0.0.1:0 --latency-flex "$FLEX_LATENCY" --latency-standard 50ms 2>"$work/sim.log" &
pids+=($!)
sim=$(wait_for_address "$work/sim.log" listening)
cat >"$work/flexgate.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[upstream]
base_url = "http://$sim/v1"
proxy = "none"
[store]
dir = "$work/store"
[batch]
max_in_flight = $IN_FLIGHT
TOML
"$bin" serve --config "$work/flexgate.toml" 2>"$work/gw.log" &
gw_pid=$!
pids+=($gw_pid)
gw=$(wait_for_address "$work/gw.log" '"listening"')
base="http://$gw/flex/v1"
auth=(-H "Authorization: Bearer sk-bench")

# Poll batch $1 until its status is one of the words in $2.
until_status() {
    local id=$1 want=$2 status
    while :; do
        status=$(curl -s "${auth[@]}" "$base/batches/$id" | jq -r .status)
        [[ " $want " == *" $status "* ]] && { echo "$status"; return; }
        sleep 0.05
    done
}

# Upload $1 and create a batch over it; prints the batch id.
start_batch() {
    local file_id
    file_id=$(curl -s "${auth[@]}" -F purpose=batch -F "file=@$1" "$base/files" | jq -r .id)
    curl -s "${auth[@]}" -H 'Content-Type: application/json' \
        -d "{\"input_file_id\":\"$file_id\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}" \
        "$base/batches" | jq -r .id
}

echo "--- generating $LINES lines" >&2
generate "$LINES" >"$work/big.jsonl"
size=$(stat -c %s "$work/big.jsonl")
start=$(date +%s.%N)
id=$(start_batch "$work/big.jsonl")
until_status "$id" "in_progress failed" >/dev/null
ingest=$(echo "$(date +%s.%N) - $start" | bc)
ingest_rss=$(peak_rss_kib "$gw_pid")
curl -s "${auth[@]}" -X POST "$base/batches/$id/cancel" >/dev/null
until_status "$id" "cancelled" >/dev/null
printf 'ingest: %d lines, %.1f MB uploaded and validated in %.2f s; peak RSS %.1f MiB\n' \
    "$LINES" "$(echo "$size / 1000000" | bc -l)" "$ingest" "$(echo "$ingest_rss / 1024" | bc -l)"

echo "--- running $RUN_LINES lines (flex latency $FLEX_LATENCY, $IN_FLIGHT in flight)" >&2
generate "$RUN_LINES" >"$work/run.jsonl"
hz=$(getconf CLK_TCK)
before=$(cpu_ticks "$gw_pid")
start=$(date +%s.%N)
id=$(start_batch "$work/run.jsonl")
until_status "$id" "completed failed expired" >/dev/null
wall=$(echo "$(date +%s.%N) - $start" | bc)
batch_cpu=$(( $(cpu_ticks "$gw_pid") - before ))
counts=$(curl -s "${auth[@]}" "$base/batches/$id" | jq -c .request_counts)
run_rss=$(peak_rss_kib "$gw_pid")
per_line=$(echo "$batch_cpu / $hz / $RUN_LINES * 1000000" | bc -l)
printf 'run: %s in %.1f s (%.0f lines/s); gateway CPU %.0f us per line; peak RSS %.1f MiB\n' \
    "$counts" "$wall" "$(echo "$RUN_LINES / $wall" | bc -l)" "$per_line" "$(echo "$run_rss / 1024" | bc -l)"

echo "--- the same $RUN_LINES requests proxied (flexgate replay, $IN_FLIGHT at once)" >&2
before=$(cpu_ticks "$gw_pid")
"$bin" replay "$work/run.jsonl" --base-url "http://$gw/v1" --flex-base-url "$base" \
    --concurrency "$IN_FLIGHT" --api-key sk-bench --metrics-url none >/dev/null 2>&1
proxy_cpu=$(( $(cpu_ticks "$gw_pid") - before ))
per_request=$(echo "$proxy_cpu / $hz / $RUN_LINES * 1000000" | bc -l)
printf 'proxied: gateway CPU %.0f us per request; batch line / proxied request = %.2f\n' \
    "$per_request" "$(echo "$per_line / $per_request" | bc -l)"
