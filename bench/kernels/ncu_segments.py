#!/usr/bin/env python3
"""Where a kernel's time goes, phase by phase, from Nsight Compute's SASS source page.

Usage: bench/kernels/ncu_segments.py SASS.csv [--min-share 0.4]

SASS.csv is `ncu --import prof.ncu-rep --page source --csv --print-source sass` of a
profile taken with `--set full` (run_on_h200.sh's NCU_CASE writes it as ncu_sass.csv).
The SASS is cut into segments after each barrier, wgmma arrive, EXIT or RET, which in
the encode and decode kernels are the boundaries of their phases (split, products,
quantize, stores; a not-inlined function ends at its RET). Per segment it prints the
SASS line range, the share of warp stall samples, warp instructions executed, shared
memory wavefronts (and those beyond the ideal: bank conflicts), the top stall reasons
and the most executed opcodes. Segments below --min-share percent of the samples are
summed into one line at the end, so that nothing is silently left out.
"""
import argparse
import collections
import csv
import sys

SAMPLES = "Warp Stall Sampling (All Samples)"
EXECUTED = "Instructions Executed"
WAVEFRONTS = "L1 Wavefronts Shared"
IDEAL = "L1 Wavefronts Shared Ideal"
BOUNDARIES = ("BAR.", "WARPGROUP.ARRIVE", "EXIT", "RET")


def number(text):
    try:
        return int(text.replace(",", ""))
    except ValueError:
        return 0


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    # The page starts with a title line; the header is the first row naming the source.
    for i, row in enumerate(rows):
        if "Source" in row:
            return row, rows[i + 1 :]
    sys.exit(f"{path}: no 'Source' column: is it `ncu --page source --csv --print-source sass`?")


def opcode(source):
    words = source.split()
    if not words:
        return ""
    word = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return word.split(".")[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--min-share", type=float, default=0.4, help="percent of samples")
    args = parser.parse_args()
    header, lines = read(args.csv)
    for name in (SAMPLES, EXECUTED):
        if name not in header:
            sys.exit(f"{args.csv}: no '{name}' column: profile with `--set full`")
    column = {name: header.index(name) for name in header}
    source = column["Source"]
    stalls = [i for i, h in enumerate(header) if h.startswith("stall_") and "Not Issued" not in h]

    def value(row, name):
        return number(row[column[name]]) if name in column else 0

    total = sum(value(row, SAMPLES) for row in lines) or 1
    segments, start = [], 0
    for k, row in enumerate(lines):
        if row[source].strip().startswith(BOUNDARIES) or k == len(lines) - 1:
            segments.append((start, k))
            start = k + 1
    print(f"{len(lines)} SASS lines, {total} stall samples, "
          f"{sum(value(r, WAVEFRONTS) for r in lines)} shared wavefronts")
    print(f"{'lines':>13} {'samples':>7} {'warp instr':>11} {'wavefronts':>10} {'excess':>8}  "
          "top stalls | top opcodes | last line")
    rest = [0, 0, 0]
    for a, b in segments:
        part = lines[a : b + 1]
        samples = sum(value(r, SAMPLES) for r in part)
        executed = sum(value(r, EXECUTED) for r in part)
        waves = sum(value(r, WAVEFRONTS) for r in part)
        if 100 * samples / total < args.min_share:
            rest = [rest[0] + samples, rest[1] + executed, rest[2] + waves]
            continue
        excess = waves - sum(value(r, IDEAL) for r in part)
        reasons = collections.Counter()
        ops = collections.Counter()
        for r in part:
            for i in stalls:
                reasons[header[i][len("stall_"):]] += number(r[i])
            ops[opcode(r[source])] += value(r, EXECUTED)
        top_stalls = " ".join(f"{k}:{v}" for k, v in reasons.most_common(3) if v)
        top_ops = " ".join(f"{k}:{100 * v / max(executed, 1):.0f}%" for k, v in ops.most_common(4))
        print(f"{a:>6}-{b:<6} {100 * samples / total:6.1f}% {executed:>11} {waves:>10} "
              f"{excess:>8}  {top_stalls} | {top_ops} | {lines[b][source].strip()[:32]}")
    if rest[0] or rest[1]:
        print(f"{'(the rest)':>13} {100 * rest[0] / total:6.1f}% {rest[1]:>11} {rest[2]:>10}")


if __name__ == "__main__":
    main()
