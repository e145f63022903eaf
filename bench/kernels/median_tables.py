#!/usr/bin/env python3
"""Median of several packed_decode_bench tables, as the Markdown table of BENCHMARKS.md.

Usage: bench/kernels/median_tables.py RUN1.txt RUN2.txt [...]

Each input is the benchmark's own output (rows "model plan batch ctx B/tok | ...").
Per row and column it prints the median over the runs that have the row; ratios
are the median of the per-run ratios (each measured in one process), not the
ratio of medians. The last column says how many runs a row has. Runs with
--fragment add the fragment step's columns (µs, % of copy bandwidth, x SDPA)
and its encode's.
"""
import statistics
import sys

MODELS = {"llama3.1-8b": "Llama-3.1-8B", "qwen2.5-3b": "Qwen2.5-3B"}


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
                "p_us": float(p_us),
                "gbs": float(gbs),
                "cpy": float(cpy.rstrip("%")),
                "f_us": float(f_us),
                "f_x": float(f_x),
                "s_us": float(s_us),
                "s_x": float(s_x),
                "e_us": None if e_us == "-" else float(e_us),
                "e_cpy": None if e_cpy == "-" else float(e_cpy.rstrip("%")),
            }
            if fragment:
                fr_us, _, fr_cpy, fr_x = fragment[0].split()
                fe_us, fe_cpy = fragment[1].split()
                rows[(model, plan, int(batch), int(ctx))].update({
                    "fr_us": float(fr_us),
                    "fr_cpy": float(fr_cpy.rstrip("%")),
                    "fr_x": float(fr_x),
                    "fe_us": None if fe_us == "-" else float(fe_us),
                    "fe_cpy": None if fe_cpy == "-" else float(fe_cpy.rstrip("%")),
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
        med = lambda c: statistics.median(h[c] for h in have)
        ctx = "%dK" % (k[3] // 1024)
        line = ("| %s | %s | %.1f | %d | %s | %.1f | %.0f | %.0f%% | %.1f (%.2f) | %.1f (%.2f) | %s |"
                % (MODELS[k[0]], k[1], have[0]["bpt"], k[2], ctx, med("p_us"), med("gbs"),
                   med("cpy"), med("f_us"), med("f_x"), med("s_us"), med("s_x"),
                   median_pair(have, "e_us", "e_cpy")))
        if fragment:
            line += " %.1f | %.0f%% | %.2f | %s |" % (med("fr_us"), med("fr_cpy"), med("fr_x"),
                                                      median_pair(have, "fe_us", "fe_cpy"))
        print(line + " %d |" % len(have))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
