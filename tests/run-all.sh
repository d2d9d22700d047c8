#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
#   tests/run-all.sh
#
# Works on a fresh clone: every tool the suites need that is not part of the Rust
# toolchain is installed by the suite that needs it (Debian's prometheus for promtool
# and the live-scrape test, a Python venv under .tools/ for the SDK and manifest
# checks, Node's openai package under tests/sdk/node).
#
# Order: format → lints → docs → unit, in-process and real-socket tests → the release build
# (the same command the Dockerfile runs) → suites that drive the release binary.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo doc --no-deps (RUSTDOCFLAGS=-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked

step "cargo test"
cargo test --locked

step "cargo build --release --locked"
cargo build --release --locked

for suite in tests/sdk/run.sh tests/deploy/check.sh tests/prometheus/run.sh tests/deny/run.sh; do
    step "$suite"
    bash "$suite"
done

# A short soak in CI (45 s: shorter runs leave too little after warm-up to judge drift); run `tests/soak/run.sh 10m` for the long one (docs/reliability.md).
step "tests/soak/run.sh 45s 100"
bash tests/soak/run.sh 45s 100

step "all suites passed"
