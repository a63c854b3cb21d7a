#!/usr/bin/env bash
# Runs an AC and two devices on 127.0.0.1 over UDP, kills device `alpha` with SIGKILL, and
# shows its computation resuming on `beta`. Usage: bash examples/failover.sh [tcp|udp]
set -euo pipefail
cd "$(dirname "$0")/.."
transport="${1:-udp}"
cargo build -q -p pcxses-examples --bins
bin=target/debug
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

"$bin/pcxses-ac" --config examples/config/ac.toml --transport "$transport" --events jsonl >"$out/ac" 2>/dev/null &
until grep -q listening "$out/ac" 2>/dev/null; do sleep 0.1; done
"$bin/pcxses-device" --ac 127.0.0.1:4700 --name alpha --transport "$transport" --events jsonl >"$out/alpha" 2>/dev/null &
alpha=$!
"$bin/pcxses-device" --ac 127.0.0.1:4700 --name beta --transport "$transport" --events jsonl >"$out/beta" 2>/dev/null &
sleep 2
echo "== alpha's last acknowledged state:"
grep state_stored "$out/alpha" | tail -1
echo "== kill -9 alpha"
kill -9 "$alpha"
wait "$alpha" 2>/dev/null || true
sleep 2
echo "== the AC saw:"
grep -v state_stored "$out/ac"
echo "== beta took over:"
grep -E '"install"' "$out/beta"
grep state_stored "$out/beta" | grep counter-alpha | tail -1
