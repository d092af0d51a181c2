#!/usr/bin/env python3
"""DNSSEC answers without and with DO, Steer beside NSD and Knot, under dnsperf.

    cargo build --release && bench/dnssec.py

Serves bench.test (the bench-peers shape: SOA, 2 NS, 2 MX, TXT, a few
AAAA, h0..h9999 A) signed with one KSK and one ZSK (ALGORITHM, default
ECDSAP256SHA256, made here with dnssec-keygen at its default size):

- Steer (release binary, `workers = 1`) signs it online from the key
  directory (`[dnssec] keys = "keys"`), and steers `www.bench.test A`
  over two pools with the `priority` policy: that answer is signed the
  first time it goes out and then served from the worker's cache.
- NSD (Debian's, `server-count: 1`, `minimal-responses: yes`) serves the
  same zone signed offline with the same keys
  (`dnssec-signzone -S -x -K keys -T 300 -o bench.test`), with
  `www.bench.test A` static in it so that both zones own the same names.
- Knot (knotd, Debian's; one UDP worker) serves that same pre-signed file
  (no signing of its own). A server that is not installed is skipped.

Each server is pinned to core 0, dnsperf (UDP, on core 1) to core 1. The
mixes are `static` (random hN A), `nxdomain` (random names that do not
exist) and, for Steer only, `steered` (www A), each run with EDNS and
without DO (`dnsperf -e`), then with DO (`dnsperf -D`), SECONDS each,
REPS times, alternating the servers. Before measuring, every server's
answers are checked with dig: with DO they must carry the RRSIGs (and the
NSEC proof for NXDOMAIN), without DO none; otherwise the script fails.

Reported per server, mix and DO: answered queries per second and server
CPU per answered query (utime + stime of the server's whole process tree
from /proc, over the run), median (range), the per-rep cost of DO, and
dnsperf's average response size. dnsperf keeps QUERIES outstanding from
one core, so the qps are what that core reached, not a server's limit
(each run's line in the results gives the server core's busy share).

Writes bench/results/DATE-LABEL.md (LABEL defaults to "dnssec").
Knobs: REPS (5), SECONDS (5), CLIENTS (1), QUERIES (100 outstanding),
QPS (unset: as fast as dnsperf goes; a number: dnsperf -Q), SERVERS
("steer nsd knot"), LABEL, ALGORITHM (ECDSAP256SHA256; e.g. RSASHA256).
"""

import atexit
import ctypes
import os
import random
import re
import shutil
import signal
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
CLIENTS = int(os.environ.get("CLIENTS", "1"))
QUERIES = int(os.environ.get("QUERIES", "100"))
QPS = os.environ.get("QPS", "")
SERVERS = os.environ.get("SERVERS", "steer nsd knot").split()
LABEL = os.environ.get("LABEL", "dnssec")
ALGORITHM = os.environ.get("ALGORITHM", "ECDSAP256SHA256")

ZONE = "bench.test"
HOSTS = 10000
SOA_TTL = 300
WWW = "192.0.2.10"
MIXES = {"static": "random hN A", "nxdomain": "random non-existent names",
         "steered": "www A, steered (Steer only)"}


def base_zone():
    """bench-peers' bench.test.base (../shared/bench-peers/tools/gen.py)."""
    out = [
        f"$ORIGIN {ZONE}.",
        f"$TTL {SOA_TTL}",
        f"@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 2024010101 3600 900 604800 300",
        f"@ IN NS ns1.{ZONE}.",
        f"@ IN NS ns2.{ZONE}.",
        f"@ IN MX 10 mx1.{ZONE}.",
        f"@ IN MX 20 mx2.{ZONE}.",
        '@ IN TXT "v=spf1 mx -all"',
        "ns1 IN A 192.0.2.53",
        "ns1 IN AAAA 2001:db8::53",
        "ns2 IN A 192.0.2.54",
        "ns2 IN AAAA 2001:db8::54",
        "mx1 IN A 192.0.2.25",
        "mx2 IN A 192.0.2.26",
        'txt IN TXT "hello from bench.test"',
        "v6 IN AAAA 2001:db8::6",
    ]
    for i in range(HOSTS):
        out.append(f"h{i} IN A 198.18.{i // 256 % 256}.{i % 256}")
        if i < 100:
            out.append(f"h{i} IN AAAA 2001:db8::1:{i:x}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------ processes

PROCESSES = []


def die_with_parent():
    """In the child before exec: SIGKILL when this script dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(argv, log):
    process = subprocess.Popen(
        ["taskset", "-c", "0"] + argv, stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )
    PROCESSES.append(process)
    return process


def stop_all():
    for process in PROCESSES:
        if process.poll() is None:
            process.terminate()
    for process in PROCESSES:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    PROCESSES.clear()


def run(argv, **kwargs):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


def dig(port, name, rtype, dnssec):
    argv = ["dig", "@127.0.0.1", "-p", str(port), name, rtype, "+norecurse",
            "+time=1", "+tries=1", "+bufsize=1232", "+nocookie"]
    argv.append("+dnssec" if dnssec else "+nodnssec")
    return run(argv).stdout


def wait_for(name, process, port, log_path):
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            break
        if "198.18.0.42" in dig(port, f"h42.{ZONE}", "A", False):
            return
        time.sleep(0.2)
    with open(log_path) as log:
        sys.exit(f"{name} on port {port} did not answer; its log:\n{log.read()[-3000:]}")


def start_steer(directory, keys):
    port, admin = free_port(), free_port()
    os.makedirs(os.path.join(directory, "zones"))
    with open(os.path.join(directory, "zones", f"{ZONE}.zone"), "w") as zone:
        zone.write(base_zone())
    shutil.copytree(keys, os.path.join(directory, "keys"))
    with open(os.path.join(directory, "steer.toml"), "w") as config:
        config.write(
            f'[server]\nlisten = ["127.0.0.1:{port}"]\nzones = "zones"\nworkers = 1\n'
            f'[admin]\nlisten = "127.0.0.1:{admin}"\n'
            '[dnssec]\nkeys = "keys"\n'
            '[sites.a]\n[sites.b]\n'
            f'[pools.first]\nsite = "a"\naddresses = ["{WWW}"]\n'
            '[pools.second]\nsite = "b"\naddresses = ["192.0.2.11"]\n'
            f'[[steer]]\nname = "www.{ZONE}."\ntype = "A"\nttl = 60\n'
            'pools = ["first", "second"]\npolicy = ["priority"]\n'
        )
    log_path = os.path.join(directory, "steer.log")
    process = start([BINARY, "serve", "--config", os.path.join(directory, "steer.toml")],
                    open(log_path, "w"))
    wait_for("steer", process, port, log_path)
    return process, port


def start_nsd(directory, signed):
    port = free_port()
    with open(os.path.join(directory, "nsd.conf"), "w") as config:
        config.write(
            "server:\n"
            f"  ip-address: 127.0.0.1@{port}\n"
            "  server-count: 1\n"
            "  username: \"\"\n"
            "  chroot: \"\"\n"
            "  database: \"\"\n"
            f"  zonesdir: {directory}\n"
            f"  pidfile: {directory}/nsd.pid\n"
            f"  xfrdfile: {directory}/xfrd.state\n"
            f"  zonelistfile: {directory}/zone.list\n"
            f"  xfrdir: {directory}\n"
            "  verbosity: 0\n"
            "  hide-version: yes\n"
            "  tcp-count: 10\n"
            "  reuseport: no\n"
            "  round-robin: no\n"
            "  minimal-responses: yes\n"
            "  rrl-ratelimit: 0\n"
            "  rrl-whitelist-ratelimit: 0\n"
            "remote-control:\n  control-enable: no\n"
            f"zone:\n  name: {ZONE}\n  zonefile: {signed}\n"
        )
    log_path = os.path.join(directory, "nsd.log")
    process = start(["nsd", "-d", "-c", os.path.join(directory, "nsd.conf")],
                    open(log_path, "w"))
    wait_for("nsd", process, port, log_path)
    return process, port


def start_knot(directory, signed):
    port = free_port()
    with open(os.path.join(directory, "knot.conf"), "w") as config:
        config.write(
            "server:\n"
            f"    rundir: \"{directory}\"\n"
            f"    listen: 127.0.0.1@{port}\n"
            "    udp-workers: 1\n"
            "    tcp-workers: 1\n"
            "    background-workers: 1\n"
            f"database:\n    storage: \"{directory}\"\n"
            f"control:\n    listen: \"{directory}/knot.sock\"\n"
            "log:\n  - target: stderr\n    any: warning\n"
            "zone:\n"
            f"  - domain: {ZONE}.\n"
            f"    file: \"{signed}\"\n"
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: none\n"
        )
    log_path = os.path.join(directory, "knot.log")
    process = start(["knotd", "-c", os.path.join(directory, "knot.conf")],
                    open(log_path, "w"))
    wait_for("knot", process, port, log_path)
    return process, port


# ------------------------------------------------------------ checks


def records(output, section):
    """(name, type, rdata) of one section of dig's output."""
    found, inside = [], False
    for line in output.splitlines():
        if line.startswith(";; "):
            inside = line.startswith(f";; {section} SECTION:")
            continue
        if inside and line.strip() and not line.startswith(";"):
            fields = line.split(None, 4)
            if len(fields) >= 4:
                found.append((fields[0].lower(), fields[3],
                              fields[4] if len(fields) > 4 else ""))
    return found


def covered(found):
    """Types that RRSIGs cover, and types that are present, in one section."""
    return ({rdata.split()[0] for _, rtype, rdata in found if rtype == "RRSIG"},
            {rtype for _, rtype, _ in found})


def check(name, port, mixes):
    """Fail unless DO answers carry the signatures and the proofs, and others none."""
    problems = []
    cases = {
        "static": (f"h42.{ZONE}", "NOERROR", "198.18.0.42"),
        "nxdomain": (f"nx0badf00d.{ZONE}", "NXDOMAIN", None),
        "steered": (f"www.{ZONE}", "NOERROR", WWW),
    }
    sizes = {}
    for mix in mixes:
        qname, rcode, address = cases[mix]
        for dnssec in (False, True):
            output = dig(port, qname, "A", dnssec)
            what = f"{name} {mix} {'DO' if dnssec else 'no DO'} ({qname} A)"
            if f"status: {rcode}" not in output:
                problems.append(f"{what}: not {rcode}:\n{output}")
                continue
            if " tc" in output.split("flags:", 1)[-1].split(";", 1)[0]:
                problems.append(f"{what}: truncated:\n{output}")
            match = re.search(r"MSG SIZE\s+rcvd:\s+(\d+)", output)
            sizes[(mix, dnssec)] = int(match.group(1)) if match else None
            answer, authority = records(output, "ANSWER"), records(output, "AUTHORITY")
            answer_sigs, answer_types = covered(answer)
            authority_sigs, authority_types = covered(authority)
            if address and (qname + ".", "A", address) not in answer:
                problems.append(f"{what}: no A {address} in the answer:\n{output}")
            if not dnssec:
                if answer_sigs or authority_sigs or "NSEC" in authority_types:
                    problems.append(f"{what}: DNSSEC records without DO:\n{output}")
                continue
            if address and "A" not in answer_sigs:
                problems.append(f"{what}: no RRSIG over the A RRset:\n{output}")
            if not address:
                nsecs = [owner for owner, rtype, _ in authority if rtype == "NSEC"]
                if not {"SOA", "NSEC"} <= authority_sigs or not nsecs:
                    problems.append(f"{what}: no signed SOA and NSEC proof:\n{output}")
    if problems:
        sys.exit("DNSSEC check failed:\n" + "\n".join(problems))
    return sizes


# ------------------------------------------------------------ dnsperf


def run_dnsperf(port, queries_file, pid, dnssec):
    argv = ["timeout", "-k", "5", str(SECONDS + 30),
            "taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port),
            "-d", queries_file, "-c", str(CLIENTS), "-q", str(QUERIES),
            "-l", str(SECONDS), "-t", "2", "-D" if dnssec else "-e"]
    if QPS:
        argv += ["-Q", QPS]
    before, started = tree_cpu_seconds(pid), time.time()
    output = subprocess.run(argv, capture_output=True, text=True).stdout
    cpu, wall = tree_cpu_seconds(pid) - before, time.time() - started
    try:
        completed = int(re.search(r"Queries completed:\s+(\d+)", output).group(1))
        lost = int(re.search(r"Queries lost:\s+(\d+)", output).group(1))
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", output).group(1))
        size = int(re.search(r"Average packet size:.*response\s+(\d+)", output).group(1))
    except AttributeError:
        sys.exit(f"dnsperf failed: {' '.join(argv)}\n{output}")
    rcodes = re.search(r"Response codes:\s+(.*)", output)
    return {"qps": qps, "us_per_q": cpu / max(completed, 1) * 1e6, "lost": lost,
            "busy": 100 * cpu / wall,
            "size": size, "rcodes": rcodes.group(1).strip() if rcodes else ""}


def version(argv):
    try:
        result = run(argv)
        text = result.stdout + result.stderr
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    match = re.search(r"(\d+\.\d+\.\d+)", text)
    return match.group(1) if match else "?"


def median_range(values, digits):
    return (f"{statistics.median(values):,.{digits}f} "
            f"({min(values):,.{digits}f}–{max(values):,.{digits}f})")


def main():
    if not os.path.exists(BINARY):
        sys.exit("build first: cargo build --release")
    for tool in ("dnsperf", "dig", "dnssec-keygen", "dnssec-signzone", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit("hung up"))
    atexit.register(stop_all)
    commit = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = run(["git", "-C", REPO, "status", "--porcelain", "--", "src", "Cargo.toml",
                 "Cargo.lock"]).stdout.strip()
    built = time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(BINARY)))

    skipped = []
    wanted = [name for name in ("steer", "nsd", "knot") if name in SERVERS]
    for name, program in (("nsd", "nsd"), ("knot", "knotd")):
        if name in wanted and not shutil.which(program):
            skipped.append(f"{name} ({program} is not installed)")
            wanted.remove(name)
            print(f"skipping {name}: {program} is not installed", flush=True)

    results, sizes, versions = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="steer-dnssec-") as work:
        os.chmod(work, 0o755)
        keys = os.path.join(work, "keys")
        os.makedirs(keys)
        for flags in (["-f", "KSK"], []):
            run(["dnssec-keygen", "-q", "-K", keys, "-a", ALGORITHM] + flags + [ZONE],
                check=True)

        # The offline-signed zone for NSD and Knot: the same names as Steer's
        # (www is steered there, static here), signed with the same keys.
        presigned = os.path.join(work, "presigned")
        os.makedirs(presigned)
        unsigned = os.path.join(presigned, f"{ZONE}.zone")
        with open(unsigned, "w") as zone:
            zone.write(base_zone() + f"www 60 IN A {WWW}\n")
        signed = unsigned + ".signed"
        signing = run(["dnssec-signzone", "-S", "-x", "-K", keys, "-T", str(SOA_TTL),
                       "-o", ZONE, "-f", signed, unsigned], cwd=presigned)
        if signing.returncode != 0:
            sys.exit(f"dnssec-signzone failed:\n{signing.stdout}{signing.stderr}")

        rng = random.Random(42)
        queries = {}
        for mix, lines in (
            ("static", (f"h{rng.randrange(HOSTS)}.{ZONE} A" for _ in range(100000))),
            ("nxdomain", (f"nx{rng.getrandbits(32):08x}.{ZONE} A" for _ in range(100000))),
            ("steered", iter([f"www.{ZONE} A"])),
        ):
            queries[mix] = os.path.join(work, f"{mix}.txt")
            with open(queries[mix], "w") as out:
                out.write("\n".join(lines) + "\n")

        servers = {}
        for name in wanted:
            directory = os.path.join(work, name)
            os.makedirs(directory)
            os.chmod(directory, 0o777)
            if name == "steer":
                servers[name] = start_steer(directory, keys) + (
                    ["static", "nxdomain", "steered"],)
                versions[name] = f"Steer {commit}"
            elif name == "nsd":
                servers[name] = start_nsd(directory, signed) + (["static", "nxdomain"],)
                versions[name] = f"NSD {version(['nsd', '-v'])}"
            else:
                servers[name] = start_knot(directory, signed) + (["static", "nxdomain"],)
                versions[name] = f"Knot {version(['knotd', '-V'])}"
            sizes[name] = check(name, servers[name][1], servers[name][2])
            print(f"{name}: answers checked (RRSIGs and NSEC with DO, none without)",
                  flush=True)

        # Not measured: the first queries of each server (page faults, caches).
        for name, (process, port, mixes) in servers.items():
            run_dnsperf(port, queries["static"], process.pid, True)

        for rep in range(1, REPS + 1):
            for name, (process, port, mixes) in servers.items():
                for mix in mixes:
                    for dnssec in (False, True):
                        if process.poll() is not None:
                            sys.exit(f"{name} exited (status {process.returncode})")
                        result = run_dnsperf(port, queries[mix], process.pid, dnssec)
                        results.setdefault((name, mix, dnssec), []).append(result)
                        print(f"rep {rep} {name:5} {mix:8} {'DO' if dnssec else 'no DO':5} "
                              f"{result['qps']:9.0f} qps {result['us_per_q']:6.2f} us/q "
                              f"{result['size']:4} B lost {result['lost']}", flush=True)
        stop_all()

    if not results:
        sys.exit("nothing measured")
    qps_note = f"-Q {QPS}" if QPS else "no rate limit"
    lines = [
        f"# DNSSEC without and with DO, {' / '.join(versions.values())} "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        f"Command: `REPS={REPS} SECONDS={SECONDS} CLIENTS={CLIENTS} QUERIES={QUERIES}"
        + (f" QPS={QPS}" if QPS else "") + f" SERVERS=\"{' '.join(SERVERS)}\" "
        f"LABEL={LABEL} bench/dnssec.py`",
        "",
        f"Commit {commit}" + (" (uncommitted changes under src/ when run)" if dirty else "")
        + f"; binary built {built} UTC. dnsperf {version(['dnsperf', '-h'])} over UDP on "
        f"core 1, `-c {CLIENTS} -q {QUERIES} -l {SECONDS}`, {qps_note}, `-e` (EDNS, no DO) "
        "or `-D` (DO); each server on core 0. Steer: one worker, signs online "
        "(`[dnssec] keys`), www steered (two pools, `priority`), signed on first answer "
        "and cached. NSD (`server-count: 1`, `minimal-responses: yes`) and Knot (one UDP "
        "worker, no signing of its own) serve the zone signed offline with the same "
        f"keys (`dnssec-signzone -S -x -K keys -T {SOA_TTL} -o {ZONE}`; one KSK and one "
        f"ZSK, {ALGORITHM}). Zone: bench-peers' bench.test, 10,000 hN A, www A.",
        "",
    ]
    if skipped:
        lines += ["Skipped: " + ", ".join(skipped) + ".", ""]
    lines += [
        "Server CPU per answered query (utime + stime of the server's process tree from "
        "/proc), median (min–max) over the reps; DO cost is the median of the per-rep "
        "differences (DO minus no DO, same rep). Response size: dnsperf's average. The "
        "qps are what one dnsperf core reached, not a server's limit (the runs below give "
        "the server core's busy share).",
        "",
        "| server | mix | qps no DO | qps DO | µs/query no DO | µs/query DO | DO cost µs | "
        "bytes no DO / DO | lost |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, (_, _, mixes) in servers.items():
        for mix in mixes:
            plain, signed_runs = results[(name, mix, False)], results[(name, mix, True)]
            cost = statistics.median(b["us_per_q"] - a["us_per_q"]
                                     for a, b in zip(plain, signed_runs))
            lines.append(
                f"| {name} | {mix} "
                f"| {median_range([r['qps'] for r in plain], 0)} "
                f"| {median_range([r['qps'] for r in signed_runs], 0)} "
                f"| {median_range([r['us_per_q'] for r in plain], 2)} "
                f"| {median_range([r['us_per_q'] for r in signed_runs], 2)} "
                f"| {cost:+.2f} "
                f"| {statistics.median(r['size'] for r in plain):.0f} / "
                f"{statistics.median(r['size'] for r in signed_runs):.0f} "
                f"| {sum(r['lost'] for r in plain + signed_runs)} |"
            )
    table_end = len(lines)
    lines += ["", "Sizes of the checked answers (dig +nocookie: h42, nx0badf00d, www; bytes, "
              "no DO / DO): " + "; ".join(
        f"{name} " + ", ".join(
            f"{mix} {sizes[name].get((mix, False))} / {sizes[name].get((mix, True))}"
            for mix in servers[name][2])
        for name in servers) + "."]
    lines += ["", "Runs:", "", "```"]
    for (name, mix, dnssec), runs in results.items():
        for index, result in enumerate(runs, 1):
            lines.append(f"rep {index} {name} {mix} {'DO' if dnssec else 'no-DO'} "
                         f"{result['qps']:.0f} qps {result['us_per_q']:.2f} us/q "
                         f"{result['size']} B lost {result['lost']} server core "
                         f"{result['busy']:.0f}% ({result['rcodes']})")
    lines.append("```")
    path = os.path.join(REPO, "bench", "results", f"{time.strftime('%Y-%m-%d')}-{LABEL}.md")
    with open(path, "w") as report:
        report.write("\n".join(lines) + "\n")
    print("\n".join(lines[:table_end + 2]))
    print(f"recorded {os.path.relpath(path, REPO)}")


if __name__ == "__main__":
    main()
