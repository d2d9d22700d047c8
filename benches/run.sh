#!/usr/bin/env bash
# flexgate load benchmark: builds the release binary and the `flexload` driver, installs
# `oha` when it is missing, raises the open-file limit, and runs every mode against the
# simulator on loopback. Extra arguments go to flexload (see `--help`), e.g.
#   benches/run.sh --modes nonstream --runs 5 --duration 10s
# Environment: CARGO_TARGET_DIR (default ./target), FLEXGATE_BENCH_TOOLS (where oha is
# installed when missing; default $CARGO_TARGET_DIR/bench-tools).
set -euo pipefail

cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
tools="${FLEXGATE_BENCH_TOOLS:-$target/bench-tools}"
oha_version="1.16.0"

if command -v oha >/dev/null 2>&1; then
    oha="$(command -v oha)"
elif [ -x "$tools/bin/oha" ]; then
    oha="$tools/bin/oha"
else
    echo "benches/run.sh: installing oha $oha_version into $tools (10-17 minutes on 2 cores, once)" >&2
    cargo install oha --version "$oha_version" --locked --root "$tools" >&2
    oha="$tools/bin/oha"
fi

echo "benches/run.sh: building the release binary and the driver" >&2
# Two builds: one invocation would unify dev-dependency features (tokio's test-util
# among them) into the measured binary.
cargo build --release --locked --bin flexgate >&2
cargo build --release --locked --example flexload >&2

# 10,000 held requests need ~30,000 sockets across the three processes.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "benches/run.sh: $(nproc) cores, $(uname -r), oha $("$oha" --version | awk '{print $2}')" >&2
exec "$target/release/examples/flexload" --flexgate "$target/release/flexgate" --oha "$oha" "$@"
