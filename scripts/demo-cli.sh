#!/usr/bin/env bash
# The command-line demo on the bundled regtest chain (made by a real Bitcoin Core): the
# plugin libopnet_core.so, loaded by opnet-host, builds its index from datadir A
# (chainstate scan, then catch-up), then runs over datadir B on the same index
# (three blocks were reorged away while it was off) and serves opnet.sock; then
# replay mode steps through the recorded chain while opnet-cli watches the
# reorg's events. The fixtures are only read; everything else is in a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p opnet-plugin -p opnet-host
bin=./target/release
fixtures=testdata/regtest-small
work=$(mktemp -d)
host_pid=
cleanup() {
  [[ -n $host_pid ]] && kill "$host_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
whale=00142a941deed62839991916d8a04ec99b548ee3f398
sock=$work/opnet/opnet.sock

wait_synced() {
  for _ in $(seq 1 300); do
    if "$bin/opnet-cli" --socket "$1" status --json 2>/dev/null | grep -q '"synced":true'; then
      return 0
    fi
    sleep 0.2
  done
  echo "the plugin did not sync" >&2
  return 1
}

echo "== datadir A: scan the chainstate, catch up, exit (--once)"
"$bin/opnet-host" --datadir "$fixtures/datadir-A" --opnet-dir "$work/opnet" --once --quiet
echo "== datadir B on the same index (the reorg happened while it was off), serving $sock"
"$bin/opnet-host" --datadir "$fixtures/datadir-B" --opnet-dir "$work/opnet" --quiet &
host_pid=$!
wait_synced "$sock"
"$bin/opnet-cli" --socket "$sock" status
echo "-- the whale's largest three UTXOs, and how many it has"
"$bin/opnet-cli" --socket "$sock" utxos "$whale" --sort value --limit 3
echo "   $("$bin/opnet-cli" --socket "$sock" utxos "$whale" --json | grep -o '"txid"' | wc -l) UTXOs"
kill -TERM "$host_pid"
wait "$host_pid"
host_pid=

echo "== replay: the recorded chain, stepped on command"
rsock=$work/replay/opnet.sock
mkfifo "$work/in" "$work/out"
"$bin/opnet-host" --replay "$fixtures/chain.json" --opnet-dir "$work/replay" --quiet \
  <"$work/in" >"$work/out" &
host_pid=$!
exec 3>"$work/in" 4<"$work/out"
# Sends a command; prints the host's answer (the last lines of a long one).
command() {
  echo "> $1"
  echo "$1" >&3
  local lines=()
  while read -r line <&4; do
    lines+=("$line")
    case $line in ok*|error*) break ;; esac
  done
  local n=${#lines[@]} from=0
  if (( n > 4 )); then
    from=$((n - 4))
    echo "  ... $from more"
  fi
  printf '  %s\n' "${lines[@]:from}"
}
command "step 170"
command "sync"
echo "-- opnet-cli watch, while the host disconnects 3 blocks and connects 5"
"$bin/opnet-cli" --socket "$rsock" watch --kinds blocks &
watch_pid=$!
sleep 0.5
command "run"
command "sync"
sleep 0.5
kill "$watch_pid" 2>/dev/null || true
command "quit"
exec 3>&- 4<&-
wait "$host_pid" 2>/dev/null || true
host_pid=
echo "== done"
