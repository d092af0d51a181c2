#!/usr/bin/env bash
# Plugs Steer into the shared bench-peers harness (EXTRA_SERVER_CMD).
# The harness sets BENCH_ADDR, BENCH_PORT, BENCH_RUNDIR, BENCH_ZONE_BASE (the
# zone without www) and BENCH_GEO_DB (GeoIP in MaxMind's schema); this writes
# a one-worker config that serves the zone and steers www.bench.test with the
# same policy as every other server in the harness (Germany, then continent,
# then a default for addresses the database does not know), and execs the
# release binary in the foreground, as the harness expects.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=${STEER_BINARY:-$here/../target/release/steer}
[ -x "$binary" ] || { echo "build first: cargo build --release" >&2; exit 1; }

mkdir -p "$BENCH_RUNDIR/zones"
# The zone's apex is its file name.
cp "$BENCH_ZONE_BASE" "$BENCH_RUNDIR/zones/bench.test.zone"
cat > "$BENCH_RUNDIR/steer.toml" <<TOML
[server]
listen = ["$BENCH_ADDR:$BENCH_PORT"]
zones = "zones"
workers = 1

[admin]
listen = "127.0.0.1:${STEER_ADMIN_PORT:-0}"

[geoip]
database = "$BENCH_GEO_DB"

[sites.eu]
[sites.na]
[sites.sa]
[sites.as]
[sites.de]
[sites.other]

[pools.de]
site = "de"
addresses = ["192.0.2.5"]
[pools.eu]
site = "eu"
addresses = ["192.0.2.1"]
[pools.na]
site = "na"
addresses = ["192.0.2.2"]
[pools.sa]
site = "sa"
addresses = ["192.0.2.3"]
[pools.as]
site = "as"
addresses = ["192.0.2.4"]
[pools.other]
site = "other"
addresses = ["192.0.2.10"]

[[steer]]
name = "www.bench.test."
type = "A"
ttl = 60
pools = ["de", "eu", "na", "sa", "as", "other"]
policy = [
  { geo = { DE = ["de"], EU = ["eu"], AF = ["eu"], NA = ["na"], SA = ["sa"], AS = ["as"], OC = ["as"], default = ["other"] } },
  "priority",
]
TOML
if [ -z "${STEER_RELOAD_INTERVAL:-}" ]; then
  exec "$binary" serve --config "$BENCH_RUNDIR/steer.toml"
fi
# Reload under load: SIGHUP every STEER_RELOAD_INTERVAL seconds; each reload
# re-reads and recompiles everything, and the harness counts that CPU too
# (it measures the whole process tree).
"$binary" serve --config "$BENCH_RUNDIR/steer.toml" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server; exit 0' TERM INT
while kill -0 "$server" 2>/dev/null; do
  sleep "$STEER_RELOAD_INTERVAL"
  kill -HUP "$server" 2>/dev/null || break
done
wait "$server"
