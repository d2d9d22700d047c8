#!/usr/bin/env bash
# flexgate economics benchmark: builds the driver in release (it runs the simulator and
# flexgate in its own process, on loopback) and runs every scenario. Extra arguments go
# to the driver (see `--help`), e.g.
#   benches/economics/run.sh --runs 5 --json economics.json
#   benches/economics/run.sh --scenarios storm-limit --runs 1
#   benches/economics/run.sh --replicas 2    # 2 replicas sharing Redis against 2 alone
# About 75 s per run of all four scenarios (they run at once), 3 runs by default.
# Environment: CARGO_TARGET_DIR (default ./target).
set -euo pipefail

cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}"

case " $* " in
*" --replicas "*) command -v redis-server >/dev/null || bash tests/redis/install.sh >&2 ;;
esac

echo "benches/economics/run.sh: building the driver (release)" >&2
cargo build --release --locked --example economics >&2

exec "$target/release/examples/economics" "$@"
