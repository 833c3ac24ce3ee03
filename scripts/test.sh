#!/usr/bin/env bash
# Sets up and runs every test of the project. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
# The client side (napi addon) builds the core without the engine: keep it building.
cargo check --locked -p opnet --no-default-features
# The client alone (what the napi addon links): no LevelDB, no chain readers.
cargo check --locked -p opnet --no-default-features --features client
# A real, stock bitcoind for the follow-mode suite (crates/host/tests/bitcoind.rs):
# built from the Bitcoin Core sources vendored in libbitcoinkernel-sys, cached
# outside the clone (about 15 minutes the first time on 2 cores, then instant).
OPNET_BITCOIND=$(./scripts/bitcoind.sh)
export OPNET_BITCOIND
# The loader's tests dlopen the real plugin, built next to the binaries.
cargo build --locked --release -p opnet-plugin
cargo test --workspace --release --locked
# The npm package: its addon, the typed-usage check and the Node tests against a
# real opnet-host + plugin (npm test builds what it needs first).
# npm install, not npm ci: npm 11 leaves the other platforms' optional packages of
# @napi-rs/cli's dependencies out of the lock file and then refuses it in npm ci.
npm install --no-audit --no-fund
npm test
# Fuzzing smoke run (docs/RELIABILITY.md): each cargo-fuzz target over its corpus
# plus 200,000 new inputs (20,000 for requests). cargo-fuzz needs libFuzzer's
# nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP=1 (the
# only toolchain here).
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
fuzz_tmp=$(mktemp -d)
trap 'rm -rf "$fuzz_tmp"' EXIT
# `requests` runs whole queries against a real index (~800 inputs/s): fewer runs.
for run in frames:200000 coin:200000 block_index:200000 undo:200000 block:200000 requests:20000; do
  target=${run%%:*}
  mkdir -p "$fuzz_tmp/$target"
  (cd fuzz && TMPDIR="$fuzz_tmp" RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$fuzz_tmp/$target" "corpus/$target" -- -runs="${run#*:}")
done
