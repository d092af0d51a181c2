#!/usr/bin/env python3
"""Failover time with health shared between nodes ([peers]).

Starts three release Steer nodes (a, b, c) on loopback that list each
other in [peers], each steering www.failover.test over one pool with two
endpoints, one of them probed at an HTTP backend of this script that
answers 503 to the probes of chosen nodes (it reads the node from the
probe's User-Agent) and 200 to the others. Probes run every INTERVAL
(fall 2, rise 2), the peers' views are fetched every PEER_INTERVAL, the
debounce is 200 ms.

Each of ROUNDS rounds makes the backend fail for a and b at once (c's own
probe keeps passing), and times, on each node, how long until its answers
leave the endpoint out (DNS polled every 10 ms); then heals it and times
the way back. Node c changes only because a majority of the vantage points
outvotes its own probe. Writes bench/results/DATE-LABEL.md.

    cargo build --release && bench/peers-failover.py    # ROUNDS=10

Knobs: ROUNDS, INTERVAL (s), PEER_INTERVAL (s), LABEL.
"""

import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "target", "release", "steer")
ROUNDS = int(os.environ.get("ROUNDS", "10"))
INTERVAL = float(os.environ.get("INTERVAL", "1"))
PEER_INTERVAL = float(os.environ.get("PEER_INTERVAL", "1"))
LABEL = os.environ.get("LABEL", "peers-failover")
PROBED = "192.0.2.1"
SPARE = "192.0.2.2"
NODES = ["a", "b", "c"]

failing = set()


class Backend(BaseHTTPRequestHandler):
    def do_GET(self):
        agent = self.headers.get("User-Agent", "")
        down = any(f"(node {name})" in agent for name in failing)
        body = b"no\n" if down else b"OK\n"
        self.send_response(503 if down else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config(name, dns, peer_port, peers, backend_port):
    urls = ", ".join(f'"http://127.0.0.1:{port}"' for port in peers)
    return f"""[server]
listen = ["127.0.0.1:{dns}"]
zones = "zones"
workers = 1
[admin]
listen = "127.0.0.1:0"
[health]
node = "{name}"
debounce = "200ms"
[peers]
listen = "127.0.0.1:{peer_port}"
urls = [{urls}]
interval = "{int(PEER_INTERVAL * 1000)}ms"
[probes.web]
type = "http"
path = "/health"
body_contains = "OK"
interval = "{int(INTERVAL * 1000)}ms"
timeout = "{int(INTERVAL * 500)}ms"
rise = 2
fall = 2
[sites.fra]
[pools.fra]
site = "fra"
addresses = [{{ address = "{PROBED}", probe = "web", probe_target = "127.0.0.1:{backend_port}" }}, "{SPARE}"]
[[steer]]
name = "www.failover.test."
type = "A"
ttl = 5
pools = ["fra"]
policy = ["healthy"]
"""


ZONE = """$ORIGIN failover.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 192.0.2.53
"""


def query(dns):
    header = struct.pack(">HHHHHH", 7, 0, 1, 0, 0, 0)
    name = b"".join(bytes([len(label)]) + label for label in [b"www", b"failover", b"test"]) + b"\0"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(header + name + struct.pack(">HH", 1, 1), ("127.0.0.1", dns))
        packet, _ = sock.recvfrom(4096)
    count = struct.unpack(">H", packet[6:8])[0]
    offset = 12
    while packet[offset] != 0:
        offset += packet[offset] + 1
    offset += 5
    addresses = set()
    for _ in range(count):
        offset += 2 if packet[offset] & 0xC0 == 0xC0 else 0
        rtype, _, _, length = struct.unpack(">HHIH", packet[offset:offset + 10])
        offset += 10
        if rtype == 1:
            addresses.add(socket.inet_ntoa(packet[offset:offset + length]))
        offset += length
    return PROBED in addresses


def time_until(dns, serving, started, limit=30):
    while query(dns) != serving:
        if time.monotonic() - started > limit:
            return float("nan")
        time.sleep(0.01)
    return time.monotonic() - started


def time_all(dns, serving):
    """Seconds from now until each node's answers show `serving`, timed on
    every node at once."""
    started = time.monotonic()
    times = {}
    threads = [threading.Thread(target=lambda n=name: times.__setitem__(
        n, time_until(dns[n], serving, started))) for name in NODES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    backend_port = server.server_address[1]
    dns = {name: free_port() for name in NODES}
    peer_ports = {name: free_port() for name in NODES}
    processes = []
    for name in NODES:
        directory = tempfile.mkdtemp(prefix=f"steer-{name}-")
        os.makedirs(os.path.join(directory, "zones"))
        with open(os.path.join(directory, "zones", "failover.test.zone"), "w") as zone:
            zone.write(ZONE)
        path = os.path.join(directory, "steer.toml")
        others = [peer_ports[other] for other in NODES if other != name]
        with open(path, "w") as file:
            file.write(config(name, dns[name], peer_ports[name], others, backend_port))
        processes.append(subprocess.Popen([BINARY, "serve", "--config", path],
                                          stderr=subprocess.DEVNULL))
    time.sleep(2 + 3 * PEER_INTERVAL)
    down = {name: [] for name in NODES}
    up = {name: [] for name in NODES}
    try:
        for round_number in range(ROUNDS):
            assert all(query(dns[name]) for name in NODES), "not serving at the start of a round"
            # Fail somewhere within the probe cycle, as a real outage does.
            time.sleep(INTERVAL * (round_number % 5) / 5)
            failing.update({"a", "b"})
            for name, seconds in time_all(dns, False).items():
                down[name].append(seconds)
            failing.clear()
            for name, seconds in time_all(dns, True).items():
                up[name].append(seconds)
            print(f"round {round_number + 1}: down " +
                  ", ".join(f"{n} {down[n][-1]:.2f}s" for n in NODES) + "; up " +
                  ", ".join(f"{n} {up[n][-1]:.2f}s" for n in NODES), flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        server.shutdown()

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    # fall = 2; the default jitter is a tenth of the interval.
    bound_down = 2 * INTERVAL + INTERVAL / 10 + PEER_INTERVAL + 0.2
    lines = [f"# Failover with [peers]: {LABEL}", "",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Commit: {commit}. "
             f"Command: `ROUNDS={ROUNDS} INTERVAL={INTERVAL:g} PEER_INTERVAL={PEER_INTERVAL:g} "
             f"bench/peers-failover.py`", "",
             "Probes fail for nodes a and b; c's own probe passes. Seconds from the backend "
             "failing (or healing) to each node's answers changing:", "",
             "| node | down: median (min-max) | up: median (min-max) |", "|---|---|---|"]
    for name in NODES:
        lines.append(f"| {name} | {statistics.median(down[name]):.2f} ({min(down[name]):.2f}-"
                     f"{max(down[name]):.2f}) | {statistics.median(up[name]):.2f} "
                     f"({min(up[name]):.2f}-{max(up[name]):.2f}) |")
    lines += ["", f"Bound from the failure, for every node (each needs the other's down "
              f"vote): the first failing probe within one interval plus jitter, fall - 1 more "
              f"intervals, one peer fetch and the debounce: {bound_down:.2f} s."]
    path = os.path.join(REPO, "bench", "results", f"{time.strftime('%Y-%m-%d')}-{LABEL}.md")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("wrote", path)


if __name__ == "__main__":
    main()
