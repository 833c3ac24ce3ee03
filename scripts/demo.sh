#!/usr/bin/env bash
# The main job on the bundled regtest chain (made by a real Bitcoin Core):
# build the index from datadir A (scan + catch-up), then reopen it against
# datadir B, where three blocks were reorged away (rollback through the undo
# log), and show the whale script's UTXOs. The fixtures are only read.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin opnet-index
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
whale=00142a941deed62839991916d8a04ec99b548ee3f398
for side in A B; do
  echo "== datadir-$side"
  ./target/release/opnet-index --network regtest \
    --datadir testdata/regtest-small/datadir-$side \
    --opnet-dir "$work/opnet" --script "$whale"
done
