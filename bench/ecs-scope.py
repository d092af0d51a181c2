#!/usr/bin/env python3
"""Average ECS scope prefix a server answers with for the geo-many queries.

A wider (shorter) scope lets a resolver share one cached answer with more
clients; the scope must still be correct (see the property tests). This
sends each of bench-peers' geo-many queries (dnsperf -B format: 2-byte
length, then the wire query) once over UDP and averages the scope prefix
of the ECS option in the answers, per address family.

usage: bench/ecs-scope.py QUERIES.raw HOST:PORT [HOST:PORT ...]
"""
import socket
import struct
import sys


def queries(path):
    data = open(path, "rb").read()
    at = 0
    while at + 2 <= len(data):
        (length,) = struct.unpack(">H", data[at:at + 2])
        yield data[at + 2:at + 2 + length]
        at += 2 + length


def skip_name(packet, at):
    while True:
        length = packet[at]
        if length & 0xC0 == 0xC0:
            return at + 2
        if length == 0:
            return at + 1
        at += 1 + length


def ecs_of(packet):
    """(family, source, scope) of the response's ECS option, or None."""
    counts = struct.unpack(">HHHH", packet[4:12])
    at = 12
    for _ in range(counts[0]):
        at = skip_name(packet, at) + 4
    for _ in range(counts[1] + counts[2] + counts[3]):
        at = skip_name(packet, at)
        rtype, _, _, rdlength = struct.unpack(">HHIH", packet[at:at + 10])
        at += 10
        if rtype == 41:
            option_at = at
            while option_at < at + rdlength:
                code, length = struct.unpack(">HH", packet[option_at:option_at + 4])
                if code == 8:
                    family, source, scope = struct.unpack(">HBB", packet[option_at + 4:option_at + 8])
                    return family, source, scope
                option_at += 4 + length
        at += rdlength
    return None


def measure(server, packets):
    host, port = server.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    totals = {1: [0, 0], 2: [0, 0]}
    missing = 0
    for packet in packets:
        sock.sendto(packet, (host, int(port)))
        try:
            response, _ = sock.recvfrom(4096)
        except socket.timeout:
            missing += 1
            continue
        found = ecs_of(response)
        if found is None:
            missing += 1
            continue
        family, _, scope = found
        totals[family][0] += scope
        totals[family][1] += 1
    return totals, missing


def main():
    packets = list(queries(sys.argv[1]))
    print("| server | IPv4 answers | mean IPv4 scope | IPv6 answers | mean IPv6 scope | no ECS / lost |")
    print("|---|---|---|---|---|---|")
    for server in sys.argv[2:]:
        totals, missing = measure(server, packets)
        cells = []
        for family in (1, 2):
            scope_sum, count = totals[family]
            cells += [str(count), "%.1f" % (scope_sum / count) if count else "-"]
        print("| %s | %s | %d |" % (server, " | ".join(cells), missing))


if __name__ == "__main__":
    main()
