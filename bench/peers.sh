#!/usr/bin/env bash
# Runs the shared bench-peers harness with Steer plugged in and keeps the
# report and the raw per-run CSV in bench/results/.
#
#   bench/peers.sh LABEL            # e.g. bench/peers.sh core
#
# Any bench-peers knob passes through (SERVERS, MIXES, REPS, ...). Steer's
# mixes default to "static nxdomain"; STEER_RELOAD_INTERVAL=1 makes the
# plugged-in server reload its zone every second under load.
set -euo pipefail
label=${1:?usage: bench/peers.sh LABEL}
repo=$(cd "$(dirname "$0")/.." && pwd)
peers=${BENCH_PEERS:-$repo/../shared/bench-peers}
cargo build --release --manifest-path "$repo/Cargo.toml"

export WORK=${WORK:-${TMPDIR:-/tmp}/bench-peers-work}
export EXTRA_SERVER_CMD="$repo/bench/start-steer.sh"
export EXTRA_SERVER_PORT=${EXTRA_SERVER_PORT:-5310}
export EXTRA_SERVER_NAME=${EXTRA_SERVER_NAME:-steer}
export EXTRA_SERVER_MIXES=${EXTRA_SERVER_MIXES:-static nxdomain}
(cd "$peers" && ./run.sh)

stamp=$(date -u +%Y-%m-%d)
out="$repo/bench/results/$stamp-$label"
{
  echo "# bench-peers with Steer: $label"
  echo
  echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'). Steer commit: $(git -C "$repo" rev-parse --short HEAD)."
  echo "Command: \`$(env | grep -E '^(SERVERS|MIXES|REPS|STEER_RELOAD_INTERVAL|EXTRA_SERVER_(NAME|MIXES))=' | sort | tr '\n' ' ')bench/peers.sh $label\`"
  echo
  echo '```'
  # Machine-local paths stay out of the record.
  grep -v -e '^per-run data:' "$WORK/report.txt"
  echo '```'
} > "$out.md"
cp "$WORK/results.csv" "$out.csv"
echo "recorded $out.md and $out.csv"
