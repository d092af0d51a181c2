#!/usr/bin/env bash
# Plugs Steer into the shared bench-peers harness (EXTRA_SERVER_CMD).
# The harness sets BENCH_ADDR, BENCH_PORT, BENCH_RUNDIR and BENCH_ZONE_FILE;
# this writes a one-worker config serving that zone and execs the release
# binary in the foreground, as the harness expects.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${STEER_BINARY:-$here/../target/release/steer}
[ -x "$binary" ] || { echo "build first: cargo build --release" >&2; exit 1; }

mkdir -p "$BENCH_RUNDIR/zones"
# The zone's apex is its file name.
cp "$BENCH_ZONE_FILE" "$BENCH_RUNDIR/zones/bench.test.zone"
cat > "$BENCH_RUNDIR/steer.toml" <<TOML
[server]
listen = ["$BENCH_ADDR:$BENCH_PORT"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:${STEER_ADMIN_PORT:-0}"
TOML
if [ -z "${STEER_RELOAD_INTERVAL:-}" ]; then
  exec "$binary" serve --config "$BENCH_RUNDIR/steer.toml"
fi
# Reload under load: SIGHUP every STEER_RELOAD_INTERVAL seconds. The zone is
# touched each time so every reload re-reads and recompiles it; the CPU of
# the compiles is the server's and the harness counts it (whole process tree).
"$binary" serve --config "$BENCH_RUNDIR/steer.toml" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server; exit 0' TERM INT
while kill -0 "$server" 2>/dev/null; do
  sleep "$STEER_RELOAD_INTERVAL"
  kill -HUP "$server" 2>/dev/null || break
done
wait "$server"
