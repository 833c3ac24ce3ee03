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
# The npm package: its addon, the typed-usage check and the Node tests against a
# real opnet-host + plugin (npm test builds what it needs first).
# npm install, not npm ci: npm 11 leaves the other platforms' optional packages of
# @napi-rs/cli's dependencies out of the lock file and then refuses it in npm ci.
npm install --no-audit --no-fund
npm test
