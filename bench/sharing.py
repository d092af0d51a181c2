#!/usr/bin/env python3
"""What sharing with [peers] costs: ingest with the journal, and how fast a
peer takes a journal in.

    cargo build --release && bench/sharing.py

Runs release Steer nodes on loopback, each steering www.example.test with
["latency", "priority"] over two sites (fra, iad), and posts random /24
samples through POST /latency in batches of 10,000 from one client:

1. Ingest without [peers] (no journal) and with [peers] (every accepted
   sample journaled): samples per second wall, and per server CPU second,
   for INGEST samples each, REPS times alternating.
2. Transfer: node A (journal on) and node B (reads A every INTERVAL);
   CATCH_UP samples posted to A at once, and the time until B's feed of A
   has them all, with B's CPU seconds per sample read (fetch, JSON,
   recording). Then FLOOD samples posted at full speed, more than A's
   journal holds: B's accepted + missed must add up to what A accepted.

Writes bench/results/DATE-LABEL.md (LABEL defaults to "sharing").
Knobs: REPS, INGEST, CATCH_UP, FLOOD, INTERVAL, LABEL.
"""

import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "target", "release", "steer")
REPS = int(os.environ.get("REPS", "5"))
INGEST = int(os.environ.get("INGEST", "1000000"))
CATCH_UP = int(os.environ.get("CATCH_UP", "150000"))
FLOOD = int(os.environ.get("FLOOD", "1000000"))
INTERVAL = os.environ.get("INTERVAL", "2s")
LABEL = os.environ.get("LABEL", "sharing")
BATCH = 10_000
TICKS = os.sysconf("SC_CLK_TCK")

ZONE = """$ORIGIN example.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 192.0.2.53
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config(admin, peers):
    text = f"""[server]
listen = ["127.0.0.1:0"]
zones = "zones"
workers = 1
[admin]
listen = "127.0.0.1:{admin}"
[latency]
compile_interval = "10s"
max_age = "1h"
[sites.fra]
[sites.iad]
[pools.web-fra]
site = "fra"
addresses = ["192.0.2.10"]
[pools.web-iad]
site = "iad"
addresses = ["198.51.100.10"]
[[steer]]
name = "www.example.test."
type = "A"
pools = ["web-iad", "web-fra"]
policy = [{{ latency = {{ margin_percent = 10, margin_ms = 5 }} }}, "priority"]
"""
    if peers:
        urls = ", ".join(f'"http://127.0.0.1:{port}"' for port in peers)
        text += f'[peers]\nurls = [{urls}]\ninterval = "{INTERVAL}"\n'
    return text


class Node:
    def __init__(self, name, peers, admin=None):
        self.admin = admin or free_port()
        self.directory = tempfile.mkdtemp(prefix=f"steer-{name}-")
        os.makedirs(os.path.join(self.directory, "zones"))
        with open(os.path.join(self.directory, "zones", "example.test.zone"), "w") as zone:
            zone.write(ZONE)
        path = os.path.join(self.directory, "steer.toml")
        with open(path, "w") as file:
            file.write(config(self.admin, peers))
        self.process = subprocess.Popen(
            ["taskset", "-c", "0", BINARY, "serve", "--config", path],
            stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                self.get("/status")
                return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"node {name} did not start")

    def get(self, path):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=60)
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())

    def post_all(self, bodies):
        connection = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=120)
        accepted = 0
        for body in bodies:
            connection.request("POST", "/latency", body, {"Content-Type": "application/json"})
            accepted += json.loads(connection.getresponse().read())["accepted"]
        return accepted

    def cpu(self):
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def feed(self, peer):
        url = f"http://127.0.0.1:{peer.admin}"
        for feed in self.get("/status")["latency"]["peers"]:
            if feed["url"] == url:
                return feed
        return None

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def bodies(samples, seed):
    rng = random.Random(seed)
    out = []
    for start in range(0, samples, BATCH):
        rows = []
        for _ in range(min(BATCH, samples - start)):
            network = rng.randrange(1 << 24)
            client = "%d.%d.%d.0/24" % (network >> 16, (network >> 8) & 255, network & 255)
            rows.append('{"client":"%s","site":"%s","rtt_ms":%d}'
                        % (client, rng.choice(("fra", "iad")), rng.randrange(5, 300)))
        out.append(('{"samples":[' + ",".join(rows) + "]}").encode())
    return out


def ingest(node, payload):
    cpu = node.cpu()
    started = time.monotonic()
    accepted = node.post_all(payload)
    wall = time.monotonic() - started
    return accepted / wall, accepted / max(node.cpu() - cpu, 1e-9)


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    lines = [f"# Sharing with [peers]: {LABEL}", ""]
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    lines.append(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Commit: {commit}. "
                 f"Command: `REPS={REPS} INGEST={INGEST} CATCH_UP={CATCH_UP} FLOOD={FLOOD} "
                 f"INTERVAL={INTERVAL} bench/sharing.py`")
    lines.append("")

    # 1. Ingest, journal off and on, alternating. The journaling node's
    # peer does not exist: only the journal's cost is measured.
    results = {"off": [], "on": []}
    for rep in range(REPS):
        for kind in ("off", "on"):
            node = Node(kind, [] if kind == "off" else [free_port()])
            payload = bodies(INGEST, rep)
            wall, per_cpu = ingest(node, payload)
            journal = node.get("/status")["latency"]["journal"]
            node.stop()
            results[kind].append((wall, per_cpu))
            lines.append(f"rep {rep + 1} journal {kind:3}: {wall / 1e6:.2f} M samples/s wall, "
                         f"{per_cpu / 1e6:.2f} M per server CPU second, journal holds {journal}")
            print(lines[-1], flush=True)
    for kind in ("off", "on"):
        walls = [wall for wall, _ in results[kind]]
        cpus = [cpu for _, cpu in results[kind]]
        lines.append(f"journal {kind}: median {statistics.median(walls) / 1e6:.2f} M/s wall, "
                     f"{statistics.median(cpus) / 1e6:.2f} M per CPU second")
    lines.append("")

    # 2. Transfer between two nodes.
    a_port, b_port = free_port(), free_port()
    node_a = Node("a", [b_port], a_port)
    node_b = Node("b", [a_port], b_port)
    time.sleep(1)
    cpu = node_b.cpu()
    posted = node_a.post_all(bodies(CATCH_UP, 99))
    started = time.monotonic()
    while (node_b.feed(node_a) or {}).get("accepted", 0) < posted:
        assert time.monotonic() - started < 120, node_b.feed(node_a)
        time.sleep(0.05)
    caught_up = time.monotonic() - started
    spent = node_b.cpu() - cpu
    lines.append(f"catch-up: {posted} samples posted to A; B had them {caught_up:.2f} s after the "
                 f"post returned (interval {INTERVAL}); B spent {spent:.2f} CPU s, "
                 f"{spent / posted * 1e6:.2f} us per sample")
    print(lines[-1], flush=True)
    before = node_b.feed(node_a)
    posted = node_a.post_all(bodies(FLOOD, 7))
    time.sleep(3 * float(INTERVAL.rstrip("s")) + 1)
    after = node_b.feed(node_a)
    accepted = after["accepted"] - before["accepted"]
    missed = after["missed"] - before["missed"]
    lines.append(f"flood: {posted} samples posted to A at full speed; B accepted {accepted}, "
                 f"missed {missed} (sum {accepted + missed})")
    print(lines[-1], flush=True)
    node_a.stop()
    node_b.stop()

    path = os.path.join(REPO, "bench", "results", f"{time.strftime('%Y-%m-%d')}-{LABEL}.md")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
