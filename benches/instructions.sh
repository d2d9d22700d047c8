#!/usr/bin/env bash
# Instructions flexgate's user space spends per proxied request (or per streamed chunk),
# counted by valgrind's callgrind, so the figure does not move with the machine's load.
#
#   benches/instructions.sh [--log info|warn] [--stream] [--requests N] [--keep FILE]
#                           [--managed | --budget | --budget-redis] [BIN]
#
# Starts the simulator (zero latency) and `BIN serve` under callgrind on 127.0.0.1 port 0,
# sends 200 warm-up requests, then counts N requests (3,000; 300 streamed) of the
# benchmark's 2.1 KB chat request through the flex lane, 8 (4 streamed) at a time.
# BIN defaults to the release binary, built here. Needs valgrind and oha (benches/run.sh
# installs oha; set OHA to use another), and curl for --stream. --keep FILE keeps the
# callgrind profile there, for `callgrind_annotate --inclusive=yes FILE`.
# --managed: managed auth (one gateway key, a store of its own); --budget: and a budget
# for that client, never reached; --budget-redis: and that budget shared through a
# redis-server started here on a free port (tests/redis/install.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

level=warn stream=false requests="" bin="" keep="" auth=none
while [ $# -gt 0 ]; do
    case "$1" in
        --log) level="$2"; shift 2 ;;
        --stream) stream=true; shift ;;
        --requests) requests="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        --managed) auth=managed; shift ;;
        --budget) auth=budget; shift ;;
        --budget-redis) auth=budget-redis; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) bin="$1"; shift ;;
    esac
done
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
target="${CARGO_TARGET_DIR:-$PWD/target}"
oha="${OHA:-$(command -v oha || echo "${FLEXGATE_BENCH_TOOLS:-$target/bench-tools}/bin/oha")}"
[ -x "$oha" ] || { echo "instructions.sh: no oha (run benches/run.sh once, or set OHA)" >&2; exit 2; }
if [ -z "$bin" ]; then
    cargo build --release --locked --bin flexgate >&2
    bin="$target/release/flexgate"
fi
if $stream; then max_tokens=600 conns=4 requests="${requests:-300}"; else max_tokens=64 conns=8 requests="${requests:-3000}"; fi

dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

# The body flexload sends (benches/flexload/main.rs, `chat_body`).
ticket="$(for _ in $(seq 18); do printf 'Please summarise the following support ticket in three bullet points and flag anything urgent. '; done)"
printf '{"model":"gpt-5-mini","messages":[{"role":"system","content":"You are a concise support assistant."},{"role":"user","content":"%s"}],"max_completion_tokens":%s,"stream":%s,"user":"bench"}' \
    "$ticket" "$max_tokens" "$stream" > "$dir/body.json"

# Wait (bounded) for a line naming a 127.0.0.1 address in FILE, print the address.
address_in() {
    for _ in $(seq 600); do
        if a="$(grep -ho "$2" "$1" 2>/dev/null | grep -o '127.0.0.1:[0-9]\+' | head -1)" && [ -n "$a" ]; then echo "$a"; return; fi
        sleep 0.1
    done
    echo "instructions.sh: no address in $1" >&2; cat "$1" >&2; exit 1
}

"$bin" sim --listen 127.0.0.1:0 --latency-standard 0ms --latency-priority 0ms --latency-flex 0ms \
    --chunk-interval 0ms > "$dir/sim.log" 2>&1 &
pids+=($!)
sim="$(address_in "$dir/sim.log" 'listening.*')"
printf '[server]\nlisten = "127.0.0.1:0"\n[upstream]\nbase_url = "http://%s/v1"\n[log]\nformat = "json"\nlevel = "%s,flexgate::cli=info"\n' \
    "$sim" "$level" > "$dir/gw.toml"
key=bench
if [ "$auth" != none ]; then
    key=fg-instructions
    export OPENAI_API_KEY=sk-instructions FLEXGATE_KEY_BENCH="$key"
    printf '[store]\ndir = "%s/store"\n[auth]\nmode = "managed"\n[[auth.keys]]\nclient = "bench"\nenv = "FLEXGATE_KEY_BENCH"\n' \
        "$dir" >> "$dir/gw.toml"
fi
if [ "$auth" = budget ] || [ "$auth" = budget-redis ]; then
    # The benchmark's budget (benches/flexload/budgets.rs): far from reached.
    printf '[budgets.bench]\nusd = "1000"\nperiod = "month"\nreserve_usd = "0.001"\n' >> "$dir/gw.toml"
fi
if [ "$auth" = budget-redis ]; then
    bash tests/redis/install.sh
    # redis-server cannot bind port 0: the first free port from 16379 up.
    port=16379
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --requirepass instructions \
        > "$dir/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$port" -a instructions --no-auth-warning PING 2>/dev/null)" = PONG ] && break
        sleep 0.05
    done
    printf '[shared]\nredis_url = "redis://:instructions@127.0.0.1:%s/0"\n' "$port" >> "$dir/gw.toml"
fi
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" --instr-atstart=no \
    "$bin" serve --config "$dir/gw.toml" > "$dir/gw.out" 2> "$dir/gw.log" &
gw=$!
pids+=($gw)
url="http://$(address_in "$dir/gw.log" '"listening".*')/flex/v1/chat/completions"
load() {
    "$oha" -n "$1" -c "$conns" --no-tui -m POST -H "authorization: Bearer $key" \
        -H 'content-type: application/json' -D "$dir/body.json" "$url"
}
load 200 > /dev/null
chunks=1
if $stream; then
    chunks="$(curl -s -H "authorization: Bearer $key" -H 'content-type: application/json' \
        --data-binary @"$dir/body.json" "$url" | grep -c '^data: {')"
fi
callgrind_control -i on "$gw" > /dev/null
summary="$(load "$requests")"
callgrind_control -i off "$gw" > /dev/null
kill -INT "$gw"; wait "$gw" || true
echo "$summary" | grep -q 'Success rate:.*100.00%' || { echo "instructions.sh: not every request succeeded" >&2; echo "$summary" >&2; exit 1; }
echo "$summary" | grep -qE '^\s+\[200\] '"$requests"' responses' || { echo "instructions.sh: not every answer was a 200" >&2; echo "$summary" >&2; exit 1; }
[ -z "$keep" ] || cp "$dir/cg.out" "$keep"
total="$(callgrind_annotate "$dir/cg.out" | awk '/PROGRAM TOTALS/ && !done {gsub(",", "", $1); print $1; done = 1}')"
echo "binary        $bin"
echo "log level     $level"
echo "auth          $auth"
echo "requests      $requests$($stream && echo " streamed, $chunks chunks each")"
echo "instructions per request  $((total / requests))"
$stream && echo "instructions per chunk    $((total / requests / chunks))"
exit 0
