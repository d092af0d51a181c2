#!/usr/bin/env python3
"""DNS over TLS against plain TCP, Steer beside NSD, under dnsperf.

    cargo build --release && bench/dot.py

Serves one small zone (bench.test) from release Steer (one worker) and
from NSD (Debian's package, one server process), each pinned to core 0,
both with DNS over TLS on a certificate made here with openssl. dnsperf
(Debian's, on core 1) asks `www.bench.test A` over `-m tcp` and `-m dot`
for SECONDS each, with CLIENTS connections and QUERIES outstanding, REPS
times, alternating the servers. Reported: answered queries per second,
and server CPU per answered query (utime + stime of the server's whole
process tree from /proc, over the run), median and range.

dnsperf keeps its connections open, so after the first handshakes this
measures the steady state of a resolver that reuses its connection, which
RFC 7858 asks resolvers to do.

Writes bench/results/DATE-LABEL.md (LABEL defaults to "dot").
Knobs: REPS, SECONDS, CLIENTS, QUERIES, LABEL.
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port, tree_cpu_seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "target", "release", "steer")
REPS = int(os.environ.get("REPS", "5"))
SECONDS = int(os.environ.get("SECONDS", "5"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
QUERIES = int(os.environ.get("QUERIES", "64"))
LABEL = os.environ.get("LABEL", "dot")

ZONE = """$ORIGIN bench.test.
$TTL 300
@ SOA ns1 hostmaster 1 3600 600 86400 300
@ NS ns1
ns1 A 192.0.2.53
www A 192.0.2.10
"""


def wait_for(port, tls_port):
    deadline = time.time() + 15
    while time.time() < deadline:
        answer = subprocess.run(
            ["dig", "@127.0.0.1", "-p", str(port), "www.bench.test", "A", "+short",
             "+time=1", "+tries=1"],
            capture_output=True, text=True,
        ).stdout
        if "192.0.2.10" in answer:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", tls_port)) == 0:
                    return
        time.sleep(0.2)
    sys.exit(f"server on {port} did not answer")


def start_steer(directory):
    port, tls_port, admin = free_port(), free_port(), free_port()
    os.makedirs(os.path.join(directory, "zones"), exist_ok=True)
    with open(os.path.join(directory, "zones", "bench.test.zone"), "w") as zone:
        zone.write(ZONE)
    with open(os.path.join(directory, "steer.toml"), "w") as config:
        config.write(
            f'[server]\nlisten = ["127.0.0.1:{port}"]\nzones = "zones"\nworkers = 1\n'
            f'tcp_max_connections_per_client = 1024\n'
            f'tls_listen = ["127.0.0.1:{tls_port}"]\n'
            f'tls_certificate = "cert.pem"\ntls_key = "key.pem"\n'
            f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
        )
    process = subprocess.Popen(
        ["taskset", "-c", "0", BINARY, "serve", "--config",
         os.path.join(directory, "steer.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(port, tls_port)
    return process, port, tls_port


def start_nsd(directory):
    port, tls_port = free_port(), free_port()
    with open(os.path.join(directory, "bench.test.zone"), "w") as zone:
        zone.write(ZONE)
    with open(os.path.join(directory, "nsd.conf"), "w") as config:
        config.write(
            "server:\n"
            f"  ip-address: 127.0.0.1@{port}\n"
            f"  ip-address: 127.0.0.1@{tls_port}\n"
            f"  tls-port: {tls_port}\n"
            f"  tls-service-key: {directory}/key.pem\n"
            f"  tls-service-pem: {directory}/cert.pem\n"
            "  server-count: 1\n"
            "  tcp-count: 1000\n"
            f"  zonesdir: {directory}\n"
            f"  database: \"\"\n"
            f"  pidfile: {directory}/nsd.pid\n"
            f"  xfrdfile: {directory}/xfrd.state\n"
            f"  zonelistfile: {directory}/zone.list\n"
            "  username: \"\"\n"
            "  verbosity: 0\n"
            "remote-control:\n  control-enable: no\n"
            "zone:\n  name: bench.test\n  zonefile: bench.test.zone\n"
        )
    process = subprocess.Popen(
        ["taskset", "-c", "0", "nsd", "-d", "-c", os.path.join(directory, "nsd.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(port, tls_port)
    return process, port, tls_port


def run_dnsperf(mode, port, queries_file, pid):
    before = tree_cpu_seconds(pid)
    output = subprocess.run(
        ["taskset", "-c", "1", "dnsperf", "-m", mode, "-s", "127.0.0.1", "-p", str(port),
         "-d", queries_file, "-c", str(CLIENTS), "-q", str(QUERIES), "-l", str(SECONDS)],
        capture_output=True, text=True,
    ).stdout
    cpu = tree_cpu_seconds(pid) - before
    completed = int(re.search(r"Queries completed:\s+(\d+)", output).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", output).group(1))
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", output).group(1))
    return {"qps": qps, "us_per_q": cpu / max(completed, 1) * 1e6, "lost": lost}


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    results = {}
    with tempfile.TemporaryDirectory() as steer_dir, tempfile.TemporaryDirectory() as nsd_dir:
        os.chmod(nsd_dir, 0o755)
        for directory in (steer_dir, nsd_dir):
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                 "-keyout", os.path.join(directory, "key.pem"),
                 "-out", os.path.join(directory, "cert.pem")],
                check=True, capture_output=True,
            )
        queries_file = os.path.join(steer_dir, "queries.txt")
        with open(queries_file, "w") as queries:
            queries.write("www.bench.test A\n" * 1000)
        servers = {"steer": start_steer(steer_dir), "nsd": start_nsd(nsd_dir)}
        try:
            for rep in range(1, REPS + 1):
                for name, (process, port, tls_port) in servers.items():
                    for mode, target in (("tcp", port), ("dot", tls_port)):
                        run = run_dnsperf(mode, target, queries_file, process.pid)
                        results.setdefault((name, mode), []).append(run)
                        print(f"rep {rep} {name:6} {mode:4} {run['qps']:9.0f} qps "
                              f"{run['us_per_q']:6.2f} us/q lost {run['lost']}", flush=True)
        finally:
            for process, _, _ in servers.values():
                process.terminate()
                process.wait()
    lines = [
        f"# DNS over TLS and TCP, Steer and NSD ({time.strftime('%Y-%m-%d')}, commit {commit})",
        "",
        f"Command: `REPS={REPS} SECONDS={SECONDS} CLIENTS={CLIENTS} QUERIES={QUERIES} "
        "bench/dot.py`",
        "",
        f"dnsperf -m tcp|dot -c {CLIENTS} -q {QUERIES} -l {SECONDS} on core 1; the server on "
        "core 0 (Steer: one worker; NSD 4.6.1: server-count 1); `www.bench.test A`.",
        "",
        "| server | mode | qps: median (min-max) | CPU us/query: median (min-max) | lost |",
        "|---|---|---|---|---|",
    ]
    for (name, mode), runs in results.items():
        qps = [run["qps"] for run in runs]
        cpu = [run["us_per_q"] for run in runs]
        lines.append(
            f"| {name} | {mode} | {statistics.median(qps):.0f} ({min(qps):.0f}-{max(qps):.0f}) "
            f"| {statistics.median(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f}) "
            f"| {sum(run['lost'] for run in runs)} |"
        )
    lines += ["", "Runs:", "", "```"]
    for (name, mode), runs in results.items():
        for index, run in enumerate(runs, 1):
            lines.append(f"rep {index} {name} {mode} {run['qps']:.0f} qps "
                         f"{run['us_per_q']:.2f} us/q lost {run['lost']}")
    lines.append("```")
    path = os.path.join(REPO, "bench", "results", f"{time.strftime('%Y-%m-%d')}-{LABEL}.md")
    with open(path, "w") as report:
        report.write("\n".join(lines) + "\n")
    print("\n".join(lines[:12 + len(results)]))
    print(f"recorded {os.path.relpath(path, REPO)}")


if __name__ == "__main__":
    main()
