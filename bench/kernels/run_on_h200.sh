#!/usr/bin/env bash
# Builds the standalone kernels project on the GPU machine (device tool: only
# CUDA, CMake, Ninja and PyTorch there), runs the GPU tests, compute-sanitizer
# on a subset, and the decode benchmark. Abseil, GoogleTest, nlohmann-json and
# OpenSSL come as Debian .debs carried in .kdeps:
#   mkdir -p .kdeps && cd .kdeps && apt-get download libabsl-dev libabsl20220623 \
#     nlohmann-json3-dev libssl-dev libssl3 libgtest-dev libgmock-dev googletest
# Usage (repo root): bench/kernels/run_on_h200.sh [bench args...]; logs to $OUT.
# Env: SKIP_TESTS=1, SKIP_SANITIZERS=1, BUILD_TARGETS="t1 t2" (default all), KEEP_BUILD=1, NCU_CASE, NCU_KERNEL,
# AB_HEADERS, AB_TREES, AB_FLAGS, AB_CASE and AB_TESTS (below). The device tool brings back at most 8
# files from $OUT: delete what a call does not need (configure.log, build.log) after the script.
# Name .kdeps in the device tool's carry (it is git-ignored).
set -uo pipefail
OUT=${OUT:-/tmp/out}
# A warm device machine keeps /tmp/build-* between calls, and the copied tree
# keeps this machine's file times, so ninja can miss changed sources and run a
# stale binary (seen once: session 3, call 12). Build from scratch unless told.
[ -n "${KEEP_BUILD:-}" ] || rm -rf /tmp/build-gpu /tmp/build-flags /tmp/build-ab*
mkdir -p "$OUT" /tmp/deb
for f in .kdeps/*.deb; do dpkg -x "$f" /tmp/deb; done
TORCH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)
LIB=/tmp/deb/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIB:${LD_LIBRARY_PATH:-}
cmake -S kernels -B /tmp/build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES=90a \
  -DCMAKE_PREFIX_PATH="/tmp/deb/usr;$LIB/cmake;$TORCH" -DOPENSSL_ROOT_DIR=/tmp/deb/usr \
  -DCMAKE_EXE_LINKER_FLAGS="-L$LIB -Wl,-rpath-link,$LIB" > "$OUT/configure.log" 2>&1 \
  || { tail -40 "$OUT/configure.log"; exit 1; }
# AB_HEADERS="a.cuh b.cuh": more benchmark binaries, each built (alongside, in a copy of
# the tree) with that file as decode_attention.cuh (or, as "name.cuh=file", as that
# header of kernels/include/kvplan/kernels), e.g. the committed kernel
# (git show HEAD:kernels/include/kvplan/kernels/decode_attention.cuh > .kab/old.cuh,
# carry .kab); AB_FLAGS="-DKVPLAN_TILES_PER_WARP=4": one more, the working tree built
# with these extra flags. All are alternated with the working tree's binary on AB_CASE
# at the end (same process start, same card; AB_ENCODE=" " keeps the encode column).
# AB_TREES="dir": one more, built from another source tree (a change that spans several
# files), e.g. the committed one: mkdir -p .kab/head && git archive HEAD kernels core bench
# cmake tests | tar -x -C .kab/head (carry .kab). AB_CASES="case1;case2": several AB_CASEs.
# AB_TESTS="flags ab2": these variants also build and run kernels_tests (after the
# benchmark), so a variant that wins can be kept without another call. Variant build logs: /tmp/build_<variant>.log, tails in $OUT.
configure_variant() {  # source dir, build dir, extra flags
  cmake -S "$1" -B "$2" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DCMAKE_CUDA_FLAGS="$3" -DCMAKE_CXX_FLAGS="$3" \
    -DCMAKE_PREFIX_PATH="/tmp/deb/usr;$LIB/cmake;$TORCH" -DOPENSSL_ROOT_DIR=/tmp/deb/usr \
    -DCMAKE_EXE_LINKER_FLAGS="-L$LIB -Wl,-rpath-link,$LIB" &&
    cmake --build "$2" -j 4 --target packed_decode_bench $4
}
tests_for() { case " ${AB_TESTS:-} " in *" $1 "*) echo kernels_tests;; esac; }
VARIANTS=""
if [ -n "${AB_FLAGS:-}" ]; then
  configure_variant kernels /tmp/build-flags "$AB_FLAGS" "$(tests_for flags)" > /tmp/build_flags.log 2>&1 &
  VARIANTS="flags"
fi
n=0
labels=()
for h in ${AB_HEADERS:-}; do
  n=$((n + 1))
  rm -rf /tmp/ab-src$n && mkdir -p /tmp/ab-src$n && cp -r kernels core bench cmake tests /tmp/ab-src$n/
  case $h in *=*) dest=${h%%=*}; h=${h#*=};; *) dest=decode_attention.cuh;; esac
  cp "$h" /tmp/ab-src$n/kernels/include/kvplan/kernels/$dest
  configure_variant /tmp/ab-src$n/kernels /tmp/build-ab$n "" "$(tests_for ab$n)" > /tmp/build_ab$n.log 2>&1 &
  VARIANTS="$VARIANTS ab$n"
  labels[$n]=$h
done
for t in ${AB_TREES:-}; do
  n=$((n + 1))
  configure_variant "$t/kernels" /tmp/build-ab$n "" "$(tests_for ab$n)" > /tmp/build_ab$n.log 2>&1 &
  VARIANTS="$VARIANTS ab$n"
  labels[$n]="tree $t"
done
cmake --build /tmp/build-gpu -j 16 ${BUILD_TARGETS:+--target $BUILD_TARGETS} > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
echo "== build ok"
# Static SASS of the K3V3 Llama instantiation (registers, instruction mix without a profiler).
cuobjdump -sass -fun '_ZN6kvplan7kernels21PackedAttentionKernelILi128ELi4ELi3EEEvNS0_18PackedDecodeParamsE' \
  /tmp/build-gpu/bin/packed_decode_bench > "$OUT/sass.txt" 2>&1 || echo "== cuobjdump failed"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem --format=csv,noheader
if [ -z "${SKIP_TESTS:-}" ]; then
/tmp/build-gpu/bin/kernels_tests --gtest_brief=1 > "$OUT/tests.log" 2>&1
echo "== tests rc=$?"; grep -E "FAILED|PASSED|SKIPPED \]|Failure" "$OUT/tests.log" | head -30
cp -r /tmp/build-gpu/gpu_failures "$OUT/" 2>/dev/null
fi
if [ -z "${SKIP_SANITIZERS:-}" ]; then
timeout 240 compute-sanitizer --tool memcheck --print-limit 20 /tmp/build-gpu/bin/kernels_tests \
  --gtest_filter='*hd128_g4_v3_len_1_63*:*hd64_g8_v8*:*allwidths*:BlockStats*OneToken:*Graph*:*hd128_align16*:*PackedMergeHeadsTest*' \
  --gtest_brief=1 > "$OUT/memcheck.log" 2>&1
echo "== memcheck rc=$?"; grep -E "ERROR SUMMARY|Invalid|PASSED|FAILED" "$OUT/memcheck.log" | head -10
timeout 120 compute-sanitizer --tool racecheck --print-limit 10 /tmp/build-gpu/bin/kernels_tests \
  --gtest_filter='*hd128_g4_v3_len_1_63*:*hd128_v3_t33*:*PackedMergeHeadsTest*hd128_g8*' --gtest_brief=1 > "$OUT/racecheck.log" 2>&1
echo "== racecheck rc=$?"; grep -E "ERROR SUMMARY|hazard|PASSED|FAILED" "$OUT/racecheck.log" | head -10
fi
# NCU_CASE="--model llama3.1-8b --kbits 3 --batch 16 --ctx 32768": one Nsight
# Compute profile of the attention kernel on that case (clocks left alone);
# NCU_KERNEL=EncodePack (slab kernel) or EncodeWgmmaKernel profiles the first
# encode launch instead (add --fragment --fragment-encode-only to NCU_CASE for the
# fragment pages' encode).
if [ -n "${NCU_CASE:-}" ]; then
  NCU_KERNEL=${NCU_KERNEL:-PackedAttention}
  case $NCU_KERNEL in PackedAttention) ncu_skip=--no-encode;; *) ncu_skip=;; esac
  timeout 180 ncu --clock-control none --set full -k regex:$NCU_KERNEL --launch-count 1 \
    -o /tmp/prof /tmp/build-gpu/bin/packed_decode_bench $NCU_CASE $ncu_skip --iters 3 > "$OUT/ncu_run.log" 2>&1
  echo "== ncu rc=$?"
  ncu --import /tmp/prof.ncu-rep --print-details all > "$OUT/ncu.log" 2>&1
  # per-SASS-instruction counters (executed instructions, stall samples): the instruction mix
  ncu --import /tmp/prof.ncu-rep --page source --csv --print-source sass > "$OUT/ncu_sass.csv" 2>&1
  echo "== sass page rc=$? lines $(wc -l < "$OUT/ncu_sass.csv")"
  # the same page cut into the kernel's phases (samples, instructions, shared wavefronts)
  python3 bench/kernels/ncu_segments.py "$OUT/ncu_sass.csv" > "$OUT/ncu_segments.txt" 2>&1
  grep -E "^    (Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Theoretical Occupancy|Issue Slots Busy|Warp Cycles Per Issued|Executed Ipc A|Block Limit)" "$OUT/ncu.log" | head -20
fi
/tmp/build-gpu/bin/packed_decode_bench "$@" 2>&1 | tee "$OUT/bench.log"
if [ -n "$VARIANTS" ]; then
  wait
  for v in $VARIANTS; do echo "== build $v"; tail -n 3 /tmp/build_$v.log; done > "$OUT/build_variants.log"
  if [ -n "${AB_TESTS:-}" ]; then
    for v in ${AB_TESTS}; do
      /tmp/build-$v/bin/kernels_tests --gtest_brief=1 > "/tmp/tests_$v.log" 2>&1
      echo "== tests $v rc=$? $(grep -E '^\[  (PASSED|FAILED) ' /tmp/tests_$v.log | tr '\n' ' ')"
    done 2>&1 | tee "$OUT/ab_tests.log"
  fi
  IFS=';' read -ra cases <<< "${AB_CASES:-${AB_CASE:---model llama3.1-8b --kbits 3 --batch 16 --ctx 32768}}"
  for c in "${cases[@]}"; do
    echo "==== case: $c"
    for r in 1 2 3; do
      for v in gpu $VARIANTS; do
        case $v in gpu) echo "== working tree";; flags) echo "== working tree, $AB_FLAGS";;
          ab*) echo "== ${labels[${v#ab}]}";; esac
        /tmp/build-$v/bin/packed_decode_bench $c ${AB_ENCODE:---no-encode} 2>&1 | grep -E "^(llama|qwen)"
      done
    done
  done 2>&1 | tee "$OUT/ab.log"
fi
