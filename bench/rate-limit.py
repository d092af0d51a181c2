#!/usr/bin/env python3
"""UDP rate limiting: what it costs per query, and what a flood costs.

Starts Steer (release build, one UDP worker, pinned to CPU 0) on a zone of
5,000 A records, three ways: without `[rate_limit]` ("off"), with limits
no query reaches ("on": 1,000 responses per second per RRset, while the
load asks each name about 40 times a second), and with limits every name
is far over ("flood": 1 per second, slip 2, so nearly every response is
dropped or sent truncated, as for a reflection flood). For each, dnsperf
(pinned to CPU 1) sends the same 100,000 random names, once at a fixed
rate and once as fast as it can. The server's CPU (utime + stime from
/proc) is divided by the UDP packets it handled (answered + dropped, from
its own /metrics), so drops count as work done. The three run in turn,
REPS times, and the medians are written to bench/results/DATE-LABEL.md
with every run.

    cargo build --release && bench/rate-limit.py    # RATE=50000 DURATION=10 REPS=5

CASES picks the cases (default "off on flood"); "log-all" and "log-100"
measure the query log the same way, logging every query or one in 100.
"""

import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

RATE = int(os.environ.get("RATE", "50000"))
DURATION = int(os.environ.get("DURATION", "10"))
REPS = int(os.environ.get("REPS", "5"))
LABEL = os.environ.get("LABEL", "rate-limit")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.environ.get("STEER_BINARY", os.path.join(REPO, "target", "release", "steer"))
DNS_PORT = 5398
ADMIN_PORT = 8098
TICKS = os.sysconf("SC_CLK_TCK")
NAMES = 5000

ALL_CONFIGS = {
    "off": "",
    "on": "[rate_limit]\nresponses_per_second = 1000\n",
    "flood": "[rate_limit]\nresponses_per_second = 1\nerrors_per_second = 1\nslip = 2\n",
    # The query log (not rate limiting, but the same measurement): every
    # query, and one in a hundred.
    "log-all": "[query_log]\nfile = \"queries.log\"\nsample = 1\n",
    "log-100": "[query_log]\nfile = \"queries.log\"\nsample = 100\n",
}
CASES = os.environ.get("CASES", "off on flood").split()
CONFIGS = {name: ALL_CONFIGS[name] for name in CASES}


def write_inputs(directory):
    """The zone, the query file, and one config per case."""
    os.makedirs(os.path.join(directory, "zones"))
    with open(os.path.join(directory, "zones", "rl.test.zone"), "w") as zone:
        zone.write("$ORIGIN rl.test.\n$TTL 300\n")
        zone.write("@ SOA ns1 admin 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.53\n")
        for index in range(NAMES):
            zone.write(f"h{index} A 192.0.2.{index % 250 + 1}\n")
    generator = random.Random(7)
    with open(os.path.join(directory, "queries"), "w") as queries:
        for _ in range(100_000):
            queries.write(f"h{generator.randrange(NAMES)}.rl.test A\n")
    for name, section in CONFIGS.items():
        with open(os.path.join(directory, f"{name}.toml"), "w") as config:
            config.write(
                f'[server]\nlisten = ["127.0.0.1:{DNS_PORT}"]\nzones = "zones"\nworkers = 1\n'
                f'[admin]\nlisten = "127.0.0.1:{ADMIN_PORT}"\n{section}'
            )


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15; after the ")" they are 12 and 13.
    return int(fields[11]) + int(fields[12])


def metrics():
    """UDP packets handled and the rate limiter's actions so far."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN_PORT}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    handled = 0
    actions = {}
    for line in text.splitlines():
        match = re.match(r'steer_(queries|dropped)_total\{transport="udp"[^}]*\} (\d+)', line)
        if match:
            handled += int(match.group(2))
        match = re.match(r'steer_rate_limited_total\{action="(\w+)"\} (\d+)', line)
        if match:
            actions[match.group(1)] = int(match.group(2))
        match = re.match(r'steer_query_log_total\{result="(\w+)"\} (\d+)', line)
        if match:
            actions["log_" + match.group(1)] = int(match.group(2))
    return handled, actions


def wait_for_admin():
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            metrics()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit("the server did not start")


def dnsperf(directory, rate):
    command = [
        "taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(DNS_PORT),
        "-d", os.path.join(directory, "queries"), "-l", str(DURATION),
        "-c", "8", "-q", "20000", "-t", "1",
    ]
    if rate:
        command += ["-Q", str(rate)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    sent = int(re.search(r"Queries sent:\s+(\d+)", output).group(1))
    completed = int(re.search(r"Queries completed:\s+(\d+)", output).group(1))
    return sent, completed


def run_case(directory, name):
    """Both loads against one fresh server; a row per load."""
    server = subprocess.Popen(
        ["taskset", "-c", "0", BINARY, "serve", "--config", os.path.join(directory, f"{name}.toml")],
        stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        wait_for_admin()
        for load, rate in (("fixed", RATE), ("unlimited", 0)):
            handled_before, actions_before = metrics()
            ticks_before = cpu_ticks(server.pid)
            sent, completed = dnsperf(directory, rate)
            ticks = cpu_ticks(server.pid) - ticks_before
            handled_after, actions_after = metrics()
            handled = handled_after - handled_before
            actions = {
                action: count - actions_before.get(action, 0)
                for action, count in actions_after.items()
            }
            rows.append({
                "case": name,
                "load": load,
                "sent": sent,
                "completed": completed,
                "handled": handled,
                "dropped": actions.get("dropped", 0),
                "slipped": actions.get("slipped", 0),
                "logged": actions.get("log_written", 0),
                "log_dropped": actions.get("log_dropped", 0),
                "cpu_us": ticks / TICKS * 1e6 / max(handled, 1),
            })
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def main():
    if not os.access(BINARY, os.X_OK):
        sys.exit("build first: cargo build --release")
    commit = subprocess.run(
        ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        write_inputs(directory)
        for rep in range(REPS):
            for name in CONFIGS:
                for row in run_case(directory, name):
                    row["rep"] = rep + 1
                    rows.append(row)
                    print(row, flush=True)
    lines = [
        f"# Rate limiting and the query log: cost per query ({LABEL})",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Steer commit: {commit}.",
        f"Command: `RATE={RATE} DURATION={DURATION} REPS={REPS} CASES=\"{' '.join(CASES)}\" "
        f"LABEL={LABEL} bench/rate-limit.py`",
        "",
        "Server CPU µs per UDP packet handled (answered + dropped), median over reps "
        "(min–max); `whole` is the share of packets answered in full.",
        "",
        "| case | load | CPU µs/packet | packets/s handled | whole | truncated | dropped | logged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in CONFIGS:
        for load in ("fixed", "unlimited"):
            group = [row for row in rows if row["case"] == name and row["load"] == load]
            cpu = [row["cpu_us"] for row in group]
            handled = sum(row["handled"] for row in group)
            slipped = sum(row["slipped"] for row in group)
            dropped = sum(row["dropped"] for row in group)
            logged = sum(row["logged"] for row in group)
            whole = handled - slipped - dropped
            lines.append(
                f"| {name} | {load if load == 'unlimited' else f'{RATE} qps'} "
                f"| {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) "
                f"| {statistics.median(row['handled'] for row in group) / DURATION:,.0f} "
                f"| {whole / max(handled, 1):.0%} | {slipped / max(handled, 1):.0%} "
                f"| {dropped / max(handled, 1):.0%} | {logged / max(handled, 1):.1%} |"
            )
    lines += ["", "Every run:", "", "```"]
    lines += [str(row) for row in rows]
    lines += ["```", ""]
    out = os.path.join(REPO, "bench", "results", f"{time.strftime('%Y-%m-%d')}-{LABEL}.md")
    with open(out, "w") as report:
        report.write("\n".join(lines))
    print("\n".join(lines[:12 + 2 * len(CONFIGS)]))
    print(f"recorded {out}")


if __name__ == "__main__":
    main()
