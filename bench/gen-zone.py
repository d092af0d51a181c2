#!/usr/bin/env python3
"""Writes a zone with N A records for the compile-time and memory benchmark.

usage: bench/gen-zone.py N > DIR/big.test.zone
"""
import sys

count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.stdout
out.write("$ORIGIN big.test.\n$TTL 300\n")
out.write("@ IN SOA ns1 hostmaster 1 3600 900 604800 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n")
for index in range(count):
    out.write("h%d IN A 10.%d.%d.%d\n" % (index, index >> 16 & 255, index >> 8 & 255, index & 255))
