#!/usr/bin/env python3
"""Code size of each kernel in one or more cubins: an offline measure of instructions.

Usage: bench/kernels/cubin_text.py [--filter SUBSTRING] CUBIN [CUBIN ...]

Prints, per kernel (a .text.<name> section of the cubin's ELF), its code size in
bytes and in instructions (16 bytes each on sm_90). Needs no GPU and no
cuobjdump. Where a kernel's hot loop is unrolled (the fragment attention's tile
loop), a change's effect on the instructions per tile shows here before any
device time is spent; the device still decides (latency, not count, limits the
encode kernel, and its loops are not unrolled). Cubins come from
`fragment_program_compile --keep-cubins DIR` (a plan's generated decode kernels)
or from `nvcc -cubin -arch=sm_90a ...` on a kernels/src file.
"""
import struct
import sys

INSTRUCTION_BYTES = 16


def kernel_text_sizes(path):
    """[(kernel name, .text bytes)] of an ELF64 cubin."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not a 64-bit ELF image (a cubin); pass cubin files")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
               for i in range(shnum)]
    names_offset = headers[shstrndx][4]
    sizes = []
    for header in headers:
        start = names_offset + header[0]
        name = data[start:data.index(b"\0", start)].decode()
        if name.startswith(".text."):
            sizes.append((name[len(".text."):], header[5]))
    return sizes


def main(argv):
    substring = ""
    if len(argv) >= 2 and argv[0] == "--filter":
        substring, argv = argv[1], argv[2:]
    if not argv:
        sys.exit(__doc__)
    for path in argv:
        try:
            sizes = kernel_text_sizes(path)
        except (OSError, ValueError) as e:
            sys.exit(str(e))
        for name, size in sizes:
            if substring in name:
                print(f"{size:9d} B {size // INSTRUCTION_BYTES:7d} instructions  {name}  ({path})")


if __name__ == "__main__":
    main(sys.argv[1:])
