#!/bin/sh
# Turn the crate in the current directory into a dependency-only build, for the
# Dockerfile's cached dependency layer (stage 1):
#   - explicitly declared [[bench]], [[test]] and [[example]] tables are dropped, since
#     their files are not in the layer and `cargo build --release` does not build them;
#   - every remaining source path (src/main.rs, src/lib.rs, [[bin]] paths, a build
#     script) gets an empty stub, so `cargo build --release --locked` compiles every
#     dependency and nothing of flexgate.
# Dropping targets does not change dependency resolution, so --locked still holds.
# tests/deploy/check.sh runs this script on a copy of the manifest and resolves it with
# `cargo metadata --locked`, so a manifest change that breaks it fails the checks.
set -eu

manifest=${1:-Cargo.toml}

awk '
  /^[[:space:]]*\[\[(bench|test|example)\]\][[:space:]]*$/ { skip = 1; next }
  /^[[:space:]]*\[/ { skip = 0 }
  !skip { print }
' "$manifest" > "$manifest.deps"
mv "$manifest.deps" "$manifest"

stub() { # stub PATH KIND: create PATH unless it exists; lib stubs are empty
    [ -e "$1" ] && return 0
    mkdir -p "$(dirname "$1")"
    if [ "$2" = lib ]; then : > "$1"; else echo 'fn main() {}' > "$1"; fi
}

stub src/main.rs bin
stub src/lib.rs lib

# Explicit paths: `path = "..."` inside [lib] / [[bin]], and `build = "..."` in [package].
awk '
  /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section) }
  /^[[:space:]]*(path|build)[[:space:]]*=[[:space:]]*"/ {
    key = $0; sub(/^[[:space:]]*/, "", key); sub(/[[:space:]]*=.*/, "", key)
    value = $0; sub(/^[^"]*"/, "", value); sub(/".*/, "", value)
    if (key == "build") print "bin", value
    else if (section == "[lib]") print "lib", value
    else if (section == "[[bin]]") print "bin", value
  }
' "$manifest" | while read -r kind path; do stub "$path" "$kind"; done
