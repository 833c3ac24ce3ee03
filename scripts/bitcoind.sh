#!/usr/bin/env bash
# Builds stock Bitcoin Core (bitcoind + bitcoin-cli) from the sources vendored in the
# crates.io crate libbitcoinkernel-sys (no registry here ships a bitcoind binary; see
# ../shared/notes/bitcoind.md), caches the result outside the clone and prints the path
# of the cached bitcoind on stdout (bitcoin-cli is beside it). Progress goes to stderr.
#
#   scripts/bitcoind.sh            # stock bitcoind
#
# The cache is keyed by the crate version and the CMake flags, so a later run (CI with
# its caches warm, a later session on the same machine) only prints the path. Set
# OPNET_BITCOIND_CACHE to move it (default: ~/.cache/opnet-bitcoind).
set -euo pipefail

KERNEL_SYS_VERSION=0.4.1
# The vendored tree has no src/zmq, no wallet and no ip_asn.dat (notes/bitcoind.md).
FLAGS=(
  -DCMAKE_BUILD_TYPE=Release -DENABLE_WALLET=OFF -DBUILD_GUI=OFF -DBUILD_TESTS=OFF
  -DBUILD_BENCH=OFF -DBUILD_CLI=ON -DENABLE_IPC=OFF -DWITH_ZMQ=OFF -DBUILD_UTIL=OFF
  -DBUILD_TX=OFF -DBUILD_WALLET_TOOL=OFF -DBUILD_FUZZ_BINARY=OFF -DWITH_EMBEDDED_ASMAP=OFF
  -DBUILD_KERNEL_LIB=OFF
)

cache_root=${OPNET_BITCOIND_CACHE:-$HOME/.cache/opnet-bitcoind}
key=$(printf '%s\n' "libbitcoinkernel-sys=$KERNEL_SYS_VERSION" "${FLAGS[@]}" | sha256sum | cut -c1-16)
out="$cache_root/v$KERNEL_SYS_VERSION-$key"

if [[ -x "$out/bin/bitcoind" && -x "$out/bin/bitcoin-cli" ]]; then
  echo "$out/bin/bitcoind"
  exit 0
fi

log() { echo "bitcoind.sh: $*" >&2; }

# Build dependencies, installed only when missing.
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v g++ >/dev/null || need+=(g++)
[[ -e /usr/include/boost/version.hpp ]] || need+=(libboost-dev)
pkg-config --exists libevent 2>/dev/null || need+=(libevent-dev)
if ((${#need[@]})); then
  log "installing build dependencies: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  # pkg-config was only just installed: check libevent again with it.
  if ! pkg-config --exists libevent; then
    apt-get install -y -qq --no-install-recommends libevent-dev >&2
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/opnet-bitcoind-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The sources: cargo fetches the crate into its registry (never edited there: copied).
log "fetching libbitcoinkernel-sys $KERNEL_SYS_VERSION with cargo"
mkdir -p "$work/fetch/src"
cat >"$work/fetch/Cargo.toml" <<EOF
[package]
name = "fetch-bitcoin-core-sources"
version = "0.0.0"
edition = "2021"
[dependencies]
libbitcoinkernel-sys = "=$KERNEL_SYS_VERSION"
EOF
: >"$work/fetch/src/lib.rs"
(cd "$work/fetch" && cargo fetch -q >&2)
cargo_home=${CARGO_HOME:-$HOME/.cargo}
src=$(ls -d "$cargo_home"/registry/src/*/libbitcoinkernel-sys-$KERNEL_SYS_VERSION/bitcoin 2>/dev/null | head -n1)
if [[ -z "$src" || ! -f "$src/CMakeLists.txt" ]]; then
  log "error: libbitcoinkernel-sys-$KERNEL_SYS_VERSION/bitcoin not found under $cargo_home/registry/src"
  exit 1
fi
cp -a "$src" "$work/src"

log "configuring (cmake) in $work/build"
cmake -S "$work/src" -B "$work/build" "${FLAGS[@]}" >"$work/configure.log" 2>&1 || {
  tail -n 40 "$work/configure.log" >&2
  log "error: cmake configure failed"
  exit 1
}
jobs=$(nproc 2>/dev/null || echo 2)
log "building bitcoind and bitcoin-cli with $jobs jobs (about 15 minutes on 2 cores from nothing)"
cmake --build "$work/build" --target bitcoind bitcoin-cli -j"$jobs" >"$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log" >&2
  log "error: build failed"
  exit 1
}

# Install atomically: a half-copied cache never looks complete.
mkdir -p "$cache_root"
stage=$(mktemp -d "$cache_root/.stage.XXXXXX")
mkdir -p "$stage/bin"
cp "$work/build/bin/bitcoind" "$work/build/bin/bitcoin-cli" "$stage/bin/"
strip "$stage/bin/bitcoind" "$stage/bin/bitcoin-cli" 2>/dev/null || true
"$stage/bin/bitcoind" -version | head -n1 >"$stage/VERSION"
rm -rf "$out"
mv "$stage" "$out"
log "built $(cat "$out/VERSION")"
echo "$out/bin/bitcoind"
