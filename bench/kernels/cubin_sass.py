#!/usr/bin/env python3
"""SASS of the kernels in a cubin, on a machine without cuobjdump for its CUDA.

Usage: bench/kernels/cubin_sass.py [--nvdisasm PATH] [--filter SUBSTRING] CUBIN > SASS_TXT

CUDA 13 cubins are read here by an older nvdisasm, which cannot parse their ELF
headers but still decodes sm_90 instructions: each kernel's code (its
.text.<name> section) is cut out of the ELF and disassembled as a raw
instruction binary (`nvdisasm -b SM90`). The output has cuobjdump's
"Function : name" lines, so bench/kernels/sass_loop.py reads it: a change's
effect on the attention's tile loop shows without device time (NOTES.md run
26 compared three kernels' loops this way). Instructions new since that
nvdisasm may print as unknown; counts and branch targets are still right.

The development machine's nvdisasm comes from Debian's non-free
nvidia-cuda-toolkit (CUDA 11.8): `apt-get download nvidia-cuda-toolkit` with
the non-free component in the apt sources, then `dpkg -x` the .deb and pass
its usr/bin/nvdisasm (the default path below is where NOTES.md run 26 put it).
"""
import struct
import subprocess
import sys
import tempfile

DEFAULT_NVDISASM = "/tmp/nvtk/x/usr/bin/nvdisasm"


def text_sections(data):
    """[(kernel name, code bytes)] of an ELF64 cubin's .text.<name> sections."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        sys.exit("not a 64-bit ELF file (a cubin from nvcc -cubin or the JIT cache)")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):
        # name, type, flags, addr, offset, size, ...
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)

    names = header(shstrndx)

    def name(offset):
        start = names[4] + offset
        return data[start:data.index(b"\0", start)].decode()

    out = []
    for i in range(shnum):
        h = header(i)
        section = name(h[0])
        if section.startswith(".text."):
            out.append((section[len(".text."):], data[h[4]:h[4] + h[5]]))
    return out


def main(argv):
    nvdisasm = DEFAULT_NVDISASM
    only = ""
    args = []
    i = 0
    while i < len(argv):
        if argv[i] == "--nvdisasm" and i + 1 < len(argv):
            nvdisasm = argv[i + 1]
            i += 2
        elif argv[i] == "--filter" and i + 1 < len(argv):
            only = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 1:
        sys.exit(__doc__)
    with open(args[0], "rb") as f:
        kernels = text_sections(f.read())
    if not kernels:
        sys.exit(f"{args[0]} has no .text.<kernel> sections")
    for kernel, code in kernels:
        if only not in kernel:
            continue
        with tempfile.NamedTemporaryFile(suffix=".bin") as raw:
            raw.write(code)
            raw.flush()
            result = subprocess.run([nvdisasm, "-b", "SM90", raw.name], capture_output=True,
                                    text=True)
        if result.returncode != 0:
            sys.exit(f"{nvdisasm} on {kernel}: {result.stderr.strip()}")
        print(f"\t\tFunction : {kernel}")
        print(result.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
