#!/usr/bin/env bash
# A real Prometheus scrapes a running flexgate: traffic goes through the gateway, and
# flexgate_cost_usd_total and flexgate_savings_usd_total are read back through
# Prometheus's HTTP query API and compared with the gateway's own /metrics. The same
# scrape checks that every metric the dashboard and alert rules use is exported.
#
#   tests/prometheus/run.sh            (FLEXGATE_BIN overrides target/release/flexgate)
#
# Installs Debian's prometheus package when missing. Loopback only; stops everything
# it started. Prints `prometheus: N passed, M failed` and exits 1 on any failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${FLEXGATE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/flexgate}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }

if ! command -v prometheus >/dev/null; then
    echo "installing Debian's prometheus package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null; }
fi
[[ -x $BIN ]] || { echo "no flexgate binary at $BIN (build it first)" >&2; exit 2; }

# Wait until FILE has a line matching PATTERN; print the first 127.0.0.1:PORT on it.
address_in() {
    local file=$1 pattern=$2
    for _ in $(seq 1 300); do
        if line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null); then
            grep -oE '127\.0\.0\.1:[0-9]+' <<<"$line" | head -n1
            return 0
        fi
        sleep 0.1
    done
    echo "timed out waiting for '$pattern' in $file" >&2
    cat "$file" >&2
    return 1
}

"$BIN" sim --listen 127.0.0.1:0 --latency-standard 0ms --latency-flex 0ms --chunk-interval 0ms >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
SIM=$(address_in "$WORK/sim.log" 'listening')

# Managed auth with a budget for the test's key, so the budget families are exported too.
cat >"$WORK/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:0"
[upstream]
base_url = "http://$SIM/v1"
[retry]
base_delay = "10ms"
max_delay = "50ms"
[store]
dir = "$WORK/store"
[auth]
mode = "managed"
[[auth.keys]]
client = "ci"
sha256 = "$(printf %s sk-test | sha256sum | cut -d' ' -f1)"
[budgets.ci]
usd = "1000"
period = "month"
TOML
OPENAI_API_KEY=sk-sim "$BIN" serve --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
GW=$(address_in "$WORK/gateway.log" '"listening"')

PROM_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: flexgate
    static_configs:
      - targets: ["$GW"]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

# Traffic that creates every metric family: flex and standard, streamed and not, a
# retry, an escalation, a deadline miss, a cut stream, an ineligible model.
call() {
    local path=$1 body=$2
    shift 2
    curl -sS -o /dev/null -w '%{http_code}\n' "http://$GW$path" -H 'Authorization: Bearer sk-test' \
        -H 'Content-Type: application/json' "$@" -d "$body"
}
chat() { printf '{"model":"%s","stream":%s,"messages":[{"role":"user","content":"%s"}]}' "$1" "$2" "$3"; }
codes=$(
    for i in $(seq 1 5); do call /flex/v1/chat/completions "$(chat gpt-5-mini false "flex $i")"; done
    call /flex/v1/chat/completions "$(chat gpt-5 true stream)"
    call /v1/chat/completions "$(chat gpt-5 false standard)"
    call /flex/v1/responses '{"model":"o3","input":"hello"}'
    call /v1/chat/completions "$(chat gpt-5 false retry)" -H 'x-sim-fault: 503,ok'
    call /flex/v1/chat/completions "$(chat gpt-5 false escalate)" -H 'x-sim-fault: flex:429-capacity' -H 'x-flexgate-deadline: 2s'
    call /v1/chat/completions "$(chat gpt-5 false late)" -H 'x-sim-fault: hang' -H 'x-flexgate-deadline: 1s'
    call /v1/chat/completions "$(chat gpt-5 true cut)" -H 'x-sim-fault: cut'
    call /flex/v1/chat/completions "$(chat gpt-4o false ineligible)"
)
[[ $(grep -c '^200$' <<<"$codes") -eq 12 && $(grep -c '^504$' <<<"$codes") -eq 1 ]] &&
    ok "traffic answered as expected" || not_ok "traffic answered: $(tr '\n' ' ' <<<"$codes")"

curl -sS "http://$GW/metrics" >"$WORK/scrape.txt"
if "$ROOT/tests/deploy/metric_names.sh" "$WORK/scrape.txt"; then
    ok "every metric the dashboard and alert rules use is in the live scrape"
else
    not_ok "dashboard or rules use metrics the live scrape lacks"
fi

# Compare what Prometheus stored with the gateway's own exposition, to 1e-9 USD.
compare() {
    local name=$1
    python3 - "$WORK/scrape.txt" "$name" "$PROM_PORT" <<'PY'
import json, sys, time, urllib.parse, urllib.request
scrape, name, port = sys.argv[1], sys.argv[2], sys.argv[3]
expected = sum(float(l.rsplit(" ", 1)[1]) for l in open(scrape) if l.startswith(name + "{"))
if expected <= 0:
    sys.exit(f"{name}: the gateway exported {expected}, expected a positive total")
url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": f"sum({name})"})
deadline, got = time.time() + 60, None
while time.time() < deadline:
    try:
        data = json.load(urllib.request.urlopen(url, timeout=2))
        result = data["data"]["result"]
        if result:
            got = float(result[0]["value"][1])
            if abs(got - expected) < 1e-9:
                print(f"{name}: prometheus {got!r} == gateway {expected!r}")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(f"{name}: prometheus {got!r} != gateway {expected!r}")
PY
}
for name in flexgate_cost_usd_total flexgate_savings_usd_total; do
    if compare "$name"; then ok "$name read back through the Prometheus query API"; else not_ok "$name through Prometheus"; fi
done

echo "prometheus: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
