#!/usr/bin/env bash
# The main job: installs the npm package's tools, builds the addon, the plugin and
# opnet-host, then runs `npm run demo`: the plugin, loaded by opnet-host in replay
# mode, serves the bundled regtest chain (made by a real Bitcoin Core) and the
# TypeScript-facing client prints the sync status, UTXOs, a streamed whale and the
# block events of the remaining blocks, the reorg included. It exits on its own.
# (scripts/demo-cli.sh shows the same through opnet-host's datadir mode and opnet-cli.)
set -euo pipefail
cd "$(dirname "$0")/.."
# npm install, not npm ci: npm 11 leaves the other platforms' optional packages of
# @napi-rs/cli's dependencies out of the lock file and then refuses it in npm ci.
npm install --no-audit --no-fund
npm run demo
