#!/usr/bin/env python3
"""The hottest loop of a kernel in `cuobjdump -sass` output: its size and opcode mix.

Usage: bench/kernels/sass_loop.py SASS_TXT [--function N] [--list]

SASS_TXT is `cuobjdump -sass` output (one or more functions; the GPU machine has
cuobjdump, this one does not). The loop taken is the function's longest backward
branch, which in the fragment attention is the tile loop (two tiles per
iteration). It prints the loop's instruction count and its opcodes by frequency
(predicates and modifiers stripped); --list also prints the loop's instructions
other than the code-pair lookups and MMAs (LOP3, LDS, SHF, IMAD.SHL, HMMA), which
is where recomputed addresses show (NOTES.md run 25: an S2R SR_CgaCtaId,
constant-bank loads and 64-bit adds in every iteration). --function N picks the
N-th function of the file (default 0).
"""
import collections
import re
import sys

INSTRUCTION = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
BRANCH_TARGET = re.compile(r"\bBRA\b.*?0x([0-9a-f]+)")
PREDICATE = re.compile(r"^@!?U?P\w+\s+")
LOOKUP_OR_MMA = re.compile(r"^(LOP3|LDS|SHF|IMAD\.SHL|HMMA)")


def functions(path):
    """[(name, [(address, text)])] in file order."""
    out = []
    with open(path) as f:
        for line in f:
            if "Function :" in line:
                out.append((line.split("Function :")[1].strip(), []))
                continue
            m = INSTRUCTION.match(line)
            if m and out:
                out[-1][1].append((int(m.group(1), 16), m.group(2).strip()))
    return out


def longest_loop(instructions):
    best = None
    for address, text in instructions:
        m = BRANCH_TARGET.search(text)
        if m:
            target = int(m.group(1), 16)
            if target < address and (best is None or address - target > best[1] - best[0]):
                best = (target, address)
    return best


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if not args:
        sys.exit(__doc__)
    index = int(argv[argv.index("--function") + 1]) if "--function" in argv else 0
    funcs = functions(args[0])
    if index >= len(funcs):
        sys.exit(f"{args[0]} has {len(funcs)} functions")
    name, instructions = funcs[index]
    loop = longest_loop(instructions)
    if loop is None:
        sys.exit(f"{name}: no backward branch")
    body = [(a, t) for a, t in instructions if loop[0] <= a <= loop[1]]
    opcodes = collections.Counter(PREDICATE.sub("", t).split()[0].split(".")[0] for _, t in body)
    print(f"{name}: {len(instructions)} instructions; loop 0x{loop[0]:x}-0x{loop[1]:x}: "
          f"{len(body)} instructions")
    print(", ".join(f"{op} {n}" for op, n in opcodes.most_common()))
    if "--list" in argv:
        for address, text in body:
            if not LOOKUP_OR_MMA.match(PREDICATE.sub("", text)):
                print(f"  0x{address:x}  {text}")


if __name__ == "__main__":
    main(sys.argv[1:])
