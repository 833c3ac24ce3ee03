#!/usr/bin/env bash
# Sets up and runs every test of the project. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# The client side (napi addon) builds the core without the engine: keep it building.
cargo check --locked -p opnet --no-default-features
# The client alone (what the napi addon links): no LevelDB, no chain readers.
cargo check --locked -p opnet --no-default-features --features client
# The loader's tests dlopen the real plugin, built next to the binaries.
cargo build --locked --release -p opnet-plugin
cargo test --workspace --release --locked
