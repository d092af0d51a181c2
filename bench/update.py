#!/usr/bin/env python3
"""Dynamic update latency: how long an ACME-style TXT add takes from
nsupdate's send to its NOERROR (kept on disk and served), with zones of
growing size, since each update reloads the zones.

usage: cargo build --release && REPS=10 SIZES="1000 100000 1000000" bench/update.py

For each size, a zone `big.test` of that many A records (bench/gen-zone.py)
is served by the release binary with an [update] grant for TXT at
`_acme-challenge.big.test`; REPS updates are sent one after another with
BIND's nsupdate over TCP, alternately adding and deleting the record, and
each is timed from nsupdate's start to its exit (which includes nsupdate's
own start, a few milliseconds, measured alone as `nsupdate floor`: an
update to a server answering REFUSED).

With BURST=K (default 0: none), each size then also gets a burst: K
nsupdates started at once, each adding its own TXT, timed from the first
start to the last exit; updates waiting together are served by one reload.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import free_port

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(REPO, "target", "release", "steer")
SECRET = "8xR6ZPhz9rN6f0yS7pQmA1cJ2bV4kL3uW5eT9yH0gDs="
REPS = int(os.environ.get("REPS", "10"))
SIZES = [int(size) for size in os.environ.get("SIZES", "1000 100000 1000000").split()]
BURST = int(os.environ.get("BURST", "0"))


def config(port, grant):
    update = (
        f'[tsig.acme]\nalgorithm = "hmac-sha256"\nsecret = "{SECRET}"\n\n'
        '[update]\n[[update.grant]]\ntsig_key = "acme"\nzones = ["big.test."]\n'
        'names = ["_acme-challenge.big.test."]\ntypes = ["TXT"]\n'
    )
    return (
        f'[server]\nlisten = ["127.0.0.1:{port}"]\nzones = "zones"\nworkers = 1\n\n'
        f'[admin]\nlisten = "127.0.0.1:{free_port()}"\n\n' + (update if grant else "")
    )


def script(port, command):
    return f"server 127.0.0.1 {port}\ncheck-names no\nzone big.test.\n{command}\nsend\n"


NSUPDATE = ["nsupdate", "-v", "-t", "120", "-y", f"hmac-sha256:acme:{SECRET}"]


def nsupdate(port, command):
    started = time.monotonic()
    result = subprocess.run(NSUPDATE, input=script(port, command), capture_output=True, text=True)
    return time.monotonic() - started, result.returncode == 0, result.stderr


def burst(port, count):
    """Seconds from starting `count` nsupdates at once to the last one's exit."""
    started = time.monotonic()
    processes = []
    for index in range(count):
        process = subprocess.Popen(NSUPDATE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        process.stdin.write(script(port, f'update add _acme-challenge.big.test. 60 TXT "t{index}"'))
        process.stdin.close()
        processes.append(process)
    for process in processes:
        process.wait()
        if process.returncode != 0:
            sys.exit(f"update failed: {process.stderr.read()}")
    return time.monotonic() - started


def wait_ready(port, process):
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"steer exited: {process.returncode}")
        probe = subprocess.run(
            ["dig", "+short", "+time=1", "+tries=1", "-p", str(port), "@127.0.0.1",
             "big.test", "SOA"],
            capture_output=True,
            text=True,
        )
        # dig prints its errors on stdout too: look for the SOA itself.
        if probe.returncode == 0 and "hostmaster" in probe.stdout:
            return
        time.sleep(0.5)
    sys.exit("steer did not start")


def run(size, grant):
    with tempfile.TemporaryDirectory() as directory:
        os.mkdir(os.path.join(directory, "zones"))
        with open(os.path.join(directory, "zones", "big.test.zone"), "w") as zone:
            subprocess.run(
                [sys.executable, os.path.join(REPO, "bench", "gen-zone.py"), str(size)],
                stdout=zone,
                check=True,
            )
        port = free_port()
        with open(os.path.join(directory, "steer.toml"), "w") as file:
            file.write(config(port, grant))
        process = subprocess.Popen(
            ["taskset", "-c", "0", BINARY, "serve", "--config", "steer.toml"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=open(os.environ.get("STEER_LOG", os.devnull), "a"),
        )
        try:
            wait_ready(port, process)
            times = []
            for rep in range(REPS):
                command = (
                    'update add _acme-challenge.big.test. 60 TXT "token"'
                    if rep % 2 == 0
                    else "update delete _acme-challenge.big.test. TXT"
                )
                seconds, ok, error = nsupdate(port, command)
                if grant and not ok:
                    sys.exit(f"update failed: {error}")
                times.append(seconds)
            burst_seconds = burst(port, BURST) if grant and BURST else None
            return times, burst_seconds
        finally:
            process.terminate()
            process.wait()


def main():
    print(f"# dynamic update latency, {REPS} updates per size, nsupdate -v (TCP)")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    floor, _ = run(1000, grant=False)
    print(f"nsupdate floor (REFUSED, no reload): median {statistics.median(floor) * 1000:.1f} ms")
    burst_column = f" burst of {BURST}, ms |" if BURST else ""
    print("| records | median ms | min ms | max ms |" + burst_column)
    print("|---|---|---|---|" + ("---|" if BURST else ""))
    for size in SIZES:
        times, burst_seconds = run(size, grant=True)
        burst_cell = f" {burst_seconds * 1000:.1f} |" if burst_seconds is not None else ""
        print(
            f"| {size} | {statistics.median(times) * 1000:.1f} | "
            f"{min(times) * 1000:.1f} | {max(times) * 1000:.1f} |" + burst_cell,
            flush=True,
        )


if __name__ == "__main__":
    main()
