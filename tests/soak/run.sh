#!/usr/bin/env bash
# Bounded soak: the release `flexgate` and its simulator on loopback, a steady request
# rate with 20% injected faults (every scripted fault kind plus abandoned streams), for a
# fixed time; then checks no lost request, no panic, every request accounted for,
# in-flight back to zero, RSS and open fds flat within 10% after warm-up, open fds back
# to the idle count once the load has ended and idle connections have closed, clean exit.
#
#   tests/soak/run.sh [DURATION] [RATE]     defaults: 45s, 100 requests/s
#
# The driver is examples/soak.rs; it stops by itself and talks only to 127.0.0.1. Its
# figures go to target/soak-summary.json (CARGO_TARGET_DIR respected) and stdout; the
# last line is `soak: N passed, M failed`. Exits non-zero if a check failed.
set -euo pipefail

DURATION=${1:-45s}
RATE=${2:-100}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

# The gateway under test is the release binary (what ships); the driver needs no
# optimisation and reuses the test build.
cargo build --release --locked --quiet --bin flexgate
cargo build --locked --quiet --example soak

exec "$TARGET/debug/examples/soak" \
    --bin "$TARGET/release/flexgate" \
    --duration "$DURATION" \
    --rate "$RATE" \
    --fault-share 0.2 \
    --drift-warn "${3:-no}" \
    --out "$TARGET/soak-summary.json"
