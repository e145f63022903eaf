#!/usr/bin/env python3
"""Medians of decode_bounds.sh's probe log, per case, protocol and build.

Usage: bench/kernels/probe_medians.py PROBES_LOG

The log holds "== burst NAME" or "== sustained round R NAME" lines, each
followed by that probe binary's table rows (model, batch, ctx | splits, µs,
GB/s, % of copy bandwidth). This prints, per (model, batch, ctx) and protocol,
each build's median µs and % of copy bandwidth over its runs and its speed
against the first build listed (the probe with its lookups), as BENCHMARKS.md
"Session 30" reports them.
"""
import re
import statistics
import sys

HEADER = re.compile(r"^== (burst|sustained round \d+) (\S+)")


def main(path):
    runs = {}  # (protocol, model, batch, ctx) -> {build: [(us, pct)]}
    protocol = build = None
    for line in open(path, encoding="utf-8"):
        match = HEADER.match(line)
        if match:
            protocol = "burst" if match.group(1) == "burst" else "sustained"
            build = match.group(2)
            continue
        fields = line.split()
        if build is None or len(fields) < 8 or fields[3] != "|":
            continue
        key = (protocol, fields[0], int(fields[1]), int(fields[2]))
        runs.setdefault(key, {}).setdefault(build, []).append(
            (float(fields[5]), float(fields[7].rstrip("%"))))
    for (protocol, model, batch, ctx), builds in sorted(runs.items()):
        cells, base = [], None
        for name, samples in builds.items():
            us = statistics.median(s[0] for s in samples)
            pct = statistics.median(s[1] for s in samples)
            base = base or us
            cells.append(f"{name} {us:.1f} µs ({pct:.0f}%, {base / us:.2f}x, n={len(samples)})")
        print(f"{model} b{batch} {ctx // 1024}K {protocol}: " + "; ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
