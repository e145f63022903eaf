#!/usr/bin/env python3
"""Each benchmark run of power_trace.sh beside the clocks it ran under.

Usage: bench/kernels/power_runs.py RUNS_LOG CLOCKS_CSV

RUNS_LOG: power_trace.sh's runs.log ("== run R start HH:MM:SS.mmm case: ...",
the bench's table rows, "== end HH:MM:SS.mmm"). CLOCKS_CSV: nvidia-smi's
samples (timestamp, SM clock, memory clock, power, GPU and memory
temperature, active throttle reasons). Prints, per run, its rows' fragment
step µs and % of copy bandwidth (or the version-1 step's without
--fragment), then the SM clock's minimum and mean over the run's samples, the
highest power sample and how many samples had the software power cap
(throttle reason 0x4) active.
"""
import re
import sys

SW_POWER_CAP = 0x4


def read_samples(path):
    samples = []
    for line in open(path):
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 7 or " " not in fields[0]:
            continue  # nvidia-smi's error lines, if any
        time = fields[0].split()[1][:12]
        samples.append((time, int(fields[1].split()[0]), float(fields[3].split()[0]),
                        int(fields[6], 16)))
    return samples


def read_runs(path):
    runs, run = [], None
    for line in open(path):
        start = re.match(r"== run (\d+) start (\S+) case: (.*)", line)
        end = re.match(r"== end (\S+)", line)
        if start:
            run = {"round": start.group(1), "start": start.group(2), "case": start.group(3),
                   "rows": []}
        elif end and run is not None:
            run["end"] = end.group(1)
            runs.append(run)
            run = None
        elif run is not None and re.match(r"(llama|qwen)", line):
            cells = line.split("|")
            # fragment columns when present, else the version-1 step's.
            step = cells[5].split() if len(cells) > 6 else cells[1].split()
            run["rows"].append(f"{line.split()[3]}: {step[0]} µs {step[2]}")
    return runs


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    samples = read_samples(sys.argv[2])
    for run in read_runs(sys.argv[1]):
        inside = [s for s in samples if run["start"] <= s[0] <= run["end"]]
        if not inside:
            print(f"round {run['round']}: no samples between {run['start']} and {run['end']}")
            continue
        clocks = [s[1] for s in inside]
        capped = sum(1 for s in inside if s[3] & SW_POWER_CAP)
        print(f"round {run['round']} {'; '.join(run['rows'])} | SM MHz min {min(clocks)} "
              f"mean {sum(clocks) / len(clocks):.0f} | power max {max(s[2] for s in inside):.0f} W"
              f" | power-capped {capped}/{len(inside)} samples | {run['case']}")


if __name__ == "__main__":
    main()
