#!/bin/sh
# Demo traffic for deploy/compose.yaml: one urgent request and one background request
# per second, so the dashboard has something to show. Background requests carry a 30 s
# deadline, so flex capacity 429s from the simulator lead to visible escalations.
# Runs until the stack is stopped (docker compose down).
set -u
gateway=${GATEWAY_URL:-http://flexgate:8080}
body='{"model":"gpt-5-mini","messages":[{"role":"user","content":"Summarise the flex tier in one line."}]}'

request() { # request PATH EXTRA_HEADER
    curl --silent --show-error --output /dev/null --max-time 120 \
        --header 'authorization: Bearer sk-sim' \
        --header 'content-type: application/json' \
        --header "$2" \
        --data "$body" "$gateway$1" || true
}

until curl --silent --fail --output /dev/null "$gateway/readyz"; do sleep 1; done
echo "loadgen: sending to $gateway"
while :; do
    request /v1/chat/completions 'x-flexgate-class: interactive' &
    request /flex/v1/chat/completions 'x-flexgate-deadline: 30s' &
    sleep 1
done
