#!/usr/bin/env python3
"""Median of several packed_decode_bench tables, as the Markdown table of BENCHMARKS.md.

Usage: bench/kernels/median_tables.py RUN1.txt RUN2.txt [...]

Each input is the benchmark's own output (rows "model plan batch ctx B/tok | ...").
Per row and column it prints the median over the runs that have the row; ratios
are the median of the per-run ratios (each measured in one process), not the
ratio of medians. The last column says how many runs a row has.
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
            left, packed, fp16, sdpa, encode = line.split("|")
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
    return rows


def main(paths):
    runs = [parse(p) for p in paths]
    keys = sorted({k for r in runs for k in r}, key=lambda k: (k[0], -ord(k[1][1]), k[2], k[3]))
    print("| model | plan | B/tok/head | batch | ctx | packed µs | GB/s read | %cpy | fp16 µs (x) "
          "| sdpa µs (x) | encode µs (%cpy) | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in keys:
        have = [r[k] for r in runs if k in r]
        med = lambda c: statistics.median(h[c] for h in have)
        enc = [h for h in have if h["e_us"] is not None]
        enc_cell = "-"
        if enc:
            enc_cell = "%.1f (%.1f%%)" % (statistics.median(h["e_us"] for h in enc),
                                          statistics.median(h["e_cpy"] for h in enc))
        ctx = "%dK" % (k[3] // 1024)
        print("| %s | %s | %.1f | %d | %s | %.1f | %.0f | %.0f%% | %.1f (%.2f) | %.1f (%.2f) | %s | %d |"
              % (MODELS[k[0]], k[1], have[0]["bpt"], k[2], ctx, med("p_us"), med("gbs"), med("cpy"),
                 med("f_us"), med("f_x"), med("s_us"), med("s_x"), enc_cell, len(have)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
