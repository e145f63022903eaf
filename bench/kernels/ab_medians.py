#!/usr/bin/env python3
"""Medians of an A/B log of run_on_h200.sh (its $OUT/ab.log), per case and binary.

Usage: bench/kernels/ab_medians.py AB_LOG

run_on_h200.sh's AB_TREES / AB_HEADERS / AB_FLAGS alternate the working tree's
packed_decode_bench with other builds on each AB_CASE, three rounds in one
process start; its ab.log holds "==== case: ARGS", then per round and binary a
"== NAME" line and that binary's table rows. This prints, per case and binary,
the median [min-max] over the rounds of the columns the rows carry: the
version-1 step, the encode (with AB_ENCODE=" "), the fragment step and the
fragment encode, all in µs. The rounds of one call are what a same-call ratio
compares (BENCHMARKS.md); a case's cell moves more than that between calls.
"""
import statistics
import sys

COLUMNS = (("v1 step", 1), ("encode", 4), ("fragment step", 5), ("fragment encode", 6))


def first_number(field):
    try:
        return float(field.split()[0])
    except (IndexError, ValueError):
        return None  # "-": not measured


def main(path):
    order, runs = [], {}
    case = binary = None
    with open(path) as f:
        for line in f:
            if line.startswith("==== case:"):
                case = line[len("==== case:"):].strip()
            elif line.startswith("== "):
                binary = line[3:].strip()
            elif line.startswith(("llama", "qwen")) and case is not None:
                fields = line.split("|")
                key = (case, binary)
                if key not in runs:
                    runs[key] = []
                    order.append(key)
                runs[key].append({name: first_number(fields[i]) if i < len(fields) else None
                                  for name, i in COLUMNS})
    for case, binary in order:
        cells = []
        for name, _ in COLUMNS:
            values = [r[name] for r in runs[(case, binary)] if r[name] is not None]
            if values:
                cells.append(f"{name} {statistics.median(values):.1f} "
                             f"[{min(values):.1f}-{max(values):.1f}]")
        print(f"{case} | {binary} | " + "; ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
