#!/usr/bin/env bash
# Installs Debian's redis-server package (and redis-cli with it) when missing: the
# shared-budget tests (tests/process/shared.rs) start their own redis-server on a free
# port. Called by tests/run-all.sh before `cargo test`, and by the tests themselves
# when they find no redis-server.
set -euo pipefail

if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
    exit 0
fi
echo "installing Debian's redis-server package"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"
$SUDO apt-get install -y -q redis-server >/dev/null 2>&1 ||
    { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q redis-server >/dev/null; }
command -v redis-server >/dev/null && command -v redis-cli >/dev/null
