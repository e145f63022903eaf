#!/usr/bin/env python3
"""Median of several packed_decode_bench tables, as the Markdown table of BENCHMARKS.md.

Usage: bench/kernels/median_tables.py RUN1.txt RUN2.txt [...]

Each input is the benchmark's own output (rows "model plan batch ctx B/tok | ...").
Per row and column it prints the median over the runs that have the row; ratios
are the median of the per-run ratios (each measured in one process), not the
ratio of medians. The last column says how many runs a row has. Runs with
--fragment add the fragment step's columns (µs, % of copy bandwidth, x SDPA)
and its encode's. A cell the runs did not measure ("-": SDPA of ragged
batches, the version-1 step and baselines with --fragment-step-only) stays "-".
"""
import statistics
import sys

MODELS = {"llama3.1-8b": "Llama-3.1-8B", "qwen2.5-3b": "Qwen2.5-3B"}


def number(cell):
    """A table cell's value (a trailing % dropped), or None for "-"."""
    return None if cell == "-" else float(cell.rstrip("%"))


def parse(path):
    rows = {}
    with open(path) as f:
        for line in f:
            if not line.startswith(tuple(MODELS)):
                continue
            left, packed, fp16, sdpa, encode, *fragment = line.split("|")
            model, plan, batch, ctx, bpt = left.split()
            p_us, gbs, cpy = packed.split()
            f_us, f_x = fp16.split()
            s_us, s_x = sdpa.split()
            e_us, e_cpy = encode.split()
            rows[(model, plan, int(batch), int(ctx))] = {
                "bpt": float(bpt),
                "p_us": number(p_us),
                "gbs": number(gbs),
                "cpy": number(cpy),
                "f_us": number(f_us),
                "f_x": number(f_x),
                "s_us": number(s_us),
                "s_x": number(s_x),
                "e_us": number(e_us),
                "e_cpy": number(e_cpy),
            }
            if fragment:
                fr_us, _, fr_cpy, fr_x = fragment[0].split()
                fe_us, fe_cpy = fragment[1].split()
                rows[(model, plan, int(batch), int(ctx))].update({
                    "fr_us": number(fr_us),
                    "fr_cpy": number(fr_cpy),
                    "fr_x": number(fr_x),
                    "fe_us": number(fe_us),
                    "fe_cpy": number(fe_cpy),
                })
    return rows


def main(paths):
    runs = [parse(p) for p in paths]
    keys = sorted({k for r in runs for k in r}, key=lambda k: (k[0], -ord(k[1][1]), k[2], k[3]))
    fragment = any("fr_us" in row for r in runs for row in r.values())
    print("| model | plan | B/tok/head | batch | ctx | packed µs | GB/s read | %cpy | fp16 µs (x) "
          "| sdpa µs (x) | encode µs (%cpy) |"
          + (" fragment µs | %cpy | x SDPA | fragment encode µs (%cpy) |" if fragment else "")
          + " runs |")
    print("|---" * (16 if fragment else 12) + "|")

    def median_pair(have, us, cpy):
        done = [h for h in have if h.get(us) is not None]
        if not done:
            return "-"
        return "%.1f (%.1f%%)" % (statistics.median(h[us] for h in done),
                                  statistics.median(h[cpy] for h in done))

    for k in keys:
        have = [r[k] for r in runs if k in r]

        def med(column, fmt):
            values = [h[column] for h in have if h[column] is not None]
            return fmt % statistics.median(values) if values else "-"

        def with_ratio(us, x):
            return "-" if med(us, "%.1f") == "-" else "%s (%s)" % (med(us, "%.1f"), med(x, "%.2f"))

        ctx = "%dK" % (k[3] // 1024)
        line = ("| %s | %s | %.1f | %d | %s | %s | %s | %s | %s | %s | %s |"
                % (MODELS[k[0]], k[1], have[0]["bpt"], k[2], ctx, med("p_us", "%.1f"),
                   med("gbs", "%.0f"), med("cpy", "%.0f%%"), with_ratio("f_us", "f_x"),
                   with_ratio("s_us", "s_x"), median_pair(have, "e_us", "e_cpy")))
        if fragment:
            line += " %s | %s | %s | %s |" % (med("fr_us", "%.1f"), med("fr_cpy", "%.0f%%"),
                                              med("fr_x", "%.2f"),
                                              median_pair(have, "fe_us", "fe_cpy"))
        print(line + " %d |" % len(have))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
