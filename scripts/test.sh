#!/usr/bin/env bash
# Sets up and runs every test of the project. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release --locked
