#!/usr/bin/env python3
"""Soak test: steady DNS load on a steered name while its endpoints flap.

Starts three HTTP backends on loopback and Steer (release build, pinned to
CPU 0) with a `healthy, priority` chain over pool fra (two endpoints) and
pool iad (one), all probed every second (fall 2, rise 2). Then, three times
for DURATION seconds (steady, a run where each backend flips between 200
and 503 every few seconds, and steady again to show the run-to-run noise),
it runs dnsperf at RATE queries per second
on www.soak.test A (pinned to CPU 1) and, alongside, a verifier that sends
its own queries and checks that every answer is one that some health state
allows: {fra's two}, {one of fra's}, {iad's} (or fra's two when everything
is down: fail_open). It reports lost queries, wrong answers, state changes
and the server's CPU per answered query for both runs, and writes them to
bench/results/DATE-soak.md.

    cargo build --release && bench/soak-flap.py            # RATE=20000 DURATION=60
"""

import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RATE = int(os.environ.get("RATE", "20000"))
DURATION = int(os.environ.get("DURATION", "60"))
FLAP_SECONDS = float(os.environ.get("FLAP_SECONDS", "3"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("STEER_BINARY", os.path.join(REPO, "target", "release", "steer"))
DNS_PORT = 5399
ADMIN_PORT = 8099
TICKS = os.sysconf("SC_CLK_TCK")

FRA = ["192.0.2.10", "192.0.2.11"]
IAD = ["198.51.100.10"]
VALID = [sorted(FRA), [FRA[0]], [FRA[1]], IAD]


class Backend:
    """An HTTP server whose health answer the flapper switches."""

    def __init__(self):
        self.healthy = True
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                code = 200 if backend.healthy else 503
                body = b"OK\n" if backend.healthy else b"down\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def write_config(directory, backends):
    os.makedirs(os.path.join(directory, "zones"))
    with open(os.path.join(directory, "zones", "soak.test.zone"), "w") as zone:
        zone.write("$ORIGIN soak.test.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n"
                   "@ NS ns1\nns1 A 192.0.2.53\n")
    target = lambda index: "127.0.0.1:%d" % backends[index].port
    with open(os.path.join(directory, "steer.toml"), "w") as config:
        config.write(f"""[server]
listen = ["127.0.0.1:{DNS_PORT}"]
zones = "zones"
workers = 1
[admin]
listen = "127.0.0.1:{ADMIN_PORT}"
[health]
debounce = "200ms"
[probes.web]
type = "http"
path = "/health"
body_contains = "OK"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
[sites.fra]
[sites.iad]
[pools.fra]
site = "fra"
probe = "web"
addresses = [{{ address = "{FRA[0]}", probe_target = "{target(0)}" }}, {{ address = "{FRA[1]}", probe_target = "{target(1)}" }}]
[pools.iad]
site = "iad"
probe = "web"
addresses = [{{ address = "{IAD[0]}", probe_target = "{target(2)}" }}]
[[steer]]
name = "www.soak.test."
type = "A"
ttl = 5
pools = ["fra", "iad"]
policy = ["healthy", "priority"]
""")
    with open(os.path.join(directory, "queries.txt"), "w") as queries:
        queries.write("www.soak.test A\n")


def query_packet(identifier):
    header = struct.pack(">HHHHHH", identifier, 0, 1, 0, 0, 0)
    name = b"".join(bytes([len(label)]) + label for label in [b"www", b"soak", b"test"]) + b"\0"
    return header + name + struct.pack(">HH", 1, 1)


def answers(packet):
    """(rcode, sorted A addresses) of a response to query_packet."""
    rcode = packet[3] & 0x0F
    count = struct.unpack(">H", packet[6:8])[0]
    offset = 12
    while packet[offset] != 0:
        offset += packet[offset] + 1
    offset += 5
    addresses = []
    for _ in range(count):
        if packet[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while packet[offset] != 0:
                offset += packet[offset] + 1
            offset += 1
        rtype, _, _, length = struct.unpack(">HHIH", packet[offset:offset + 10])
        offset += 10
        if rtype == 1:
            addresses.append(socket.inet_ntoa(packet[offset:offset + length]))
        offset += length
    return rcode, sorted(addresses)


def verify(stop, result):
    """Sends about 200 queries a second and checks every answer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    identifier = 0
    while not stop.is_set():
        identifier = (identifier + 1) & 0xFFFF
        sock.sendto(query_packet(identifier), ("127.0.0.1", DNS_PORT))
        try:
            packet, _ = sock.recvfrom(4096)
        except socket.timeout:
            result["lost"] += 1
            continue
        rcode, addresses = answers(packet)
        result["sent"] += 1
        result["seen"][",".join(addresses)] = result["seen"].get(",".join(addresses), 0) + 1
        if rcode != 0 or addresses not in VALID:
            result["wrong"] += 1
        time.sleep(0.005)


def flap(stop, backends, result):
    """Each backend flips every FLAP_SECONDS (± a second), independently."""
    rng = random.Random(7)
    due = [time.monotonic() + rng.uniform(0, FLAP_SECONDS) for _ in backends]
    while not stop.is_set():
        now = time.monotonic()
        for index, backend in enumerate(backends):
            if now >= due[index]:
                backend.healthy = not backend.healthy
                result["flips"] += 1
                due[index] = now + FLAP_SECONDS + rng.uniform(-1, 1)
        time.sleep(0.05)
    for backend in backends:
        backend.healthy = True


def cpu_seconds(pid):
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, task)) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def state_changes():
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % ADMIN_PORT) as response:
        status = json.load(response)
    return sum(probe["changes"] for probe in status["probes"])


def run(label, pid, directory, backends, flapping):
    stop = threading.Event()
    checked = {"sent": 0, "lost": 0, "wrong": 0, "seen": {}}
    flips = {"flips": 0}
    threads = [threading.Thread(target=verify, args=(stop, checked))]
    if flapping:
        threads.append(threading.Thread(target=flap, args=(stop, backends, flips)))
    changes_before = state_changes()
    cpu_before = cpu_seconds(pid)
    for thread in threads:
        thread.start()
    perf = subprocess.run(
        ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(DNS_PORT),
         "-d", os.path.join(directory, "queries.txt"), "-c", "1", "-q", "100",
         "-Q", str(RATE), "-l", str(DURATION)],
        capture_output=True, text=True, timeout=DURATION + 60)
    cpu = cpu_seconds(pid) - cpu_before
    stop.set()
    for thread in threads:
        thread.join()
    completed = int(re.search(r"Queries completed:\s+(\d+)", perf.stdout).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", perf.stdout).group(1))
    answered = completed + checked["sent"]
    return {
        "run": label,
        "dnsperf completed": completed,
        "dnsperf lost": lost,
        "verifier answers": checked["sent"],
        "verifier lost": checked["lost"],
        "wrong answers": checked["wrong"],
        "answers seen": checked["seen"],
        "backend flips": flips["flips"],
        "state changes": state_changes() - changes_before,
        "server CPU s": round(cpu, 2),
        "CPU us/query": round(cpu / answered * 1e6, 2),
    }


def main():
    if not os.access(BINARY, os.X_OK):
        sys.exit("build first: cargo build --release")
    backends = [Backend() for _ in range(3)]
    with tempfile.TemporaryDirectory() as directory:
        write_config(directory, backends)
        server = subprocess.Popen(
            ["taskset", "-c", "0", BINARY, "serve", "--config", os.path.join(directory, "steer.toml")],
            stderr=open(os.path.join(directory, "steer.log"), "w"))
        try:
            for _ in range(100):
                try:
                    state_changes()
                    break
                except OSError:
                    time.sleep(0.1)
            results = [run("steady", server.pid, directory, backends, False)]
            time.sleep(3)  # everything back up before the next run
            results.append(run("flapping", server.pid, directory, backends, True))
            time.sleep(3)
            # A second steady run shows how much two runs differ anyway.
            results.append(run("steady again", server.pid, directory, backends, False))
        finally:
            server.terminate()
            server.wait(timeout=10)
            with open(os.path.join(directory, "steer.log")) as log:
                changes = [line for line in log if "answers changed" in line]
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    out = os.path.join(REPO, "bench", "results", "%s-soak.md" % stamp)
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    with open(out, "w") as report:
        report.write("# Soak: steady load while endpoints flap\n\n")
        report.write("Date: %s. Steer commit: %s.\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit))
        report.write("Command: `RATE=%d DURATION=%d FLAP_SECONDS=%g bench/soak-flap.py`\n\n" % (RATE, DURATION, FLAP_SECONDS))
        keys = [key for key in results[0] if key != "answers seen"]
        report.write("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n")
        for result in results:
            report.write("| " + " | ".join(str(result[key]) for key in keys) + " |\n")
        report.write("\nAnswers the verifier saw (addresses: count):\n\n")
        for result in results:
            report.write("- %s: %s\n" % (result["run"], json.dumps(result["answers seen"], sort_keys=True)))
        report.write("\nFailover times Steer logged in the flapping run (first %d of %d):\n\n```\n" % (min(10, len(changes)), len(changes)))
        for line in changes[:10]:
            report.write(re.sub(r"\x1b\[[0-9;]*m", "", line))
        report.write("```\n")
    print(open(out).read())


if __name__ == "__main__":
    main()
