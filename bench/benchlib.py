"""What the benchmark scripts share: a free loopback port for a server,
and the CPU a server's process tree used, from /proc.

Imported by the scripts beside it (Python puts a script's own folder on
its path).
"""

import os
import socket
import subprocess

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    """A loopback port free for both TCP and UDP (a DNS server takes both)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def tree_cpu_seconds(pid):
    """utime + stime of `pid` and every descendant, in seconds."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
            children = subprocess.run(
                ["pgrep", "-P", str(current)], capture_output=True, text=True
            ).stdout.split()
            pending.extend(int(child) for child in children)
        except FileNotFoundError:
            continue
    return total / TICKS
