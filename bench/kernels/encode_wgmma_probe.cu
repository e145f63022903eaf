// Design probe for the next encode kernel (NOTES.md run 31): V's encode + pack
// with the rotation on wgmma, before anything is built around it.
//
// The committed slab kernel (kvplan/kernels/encode_pack.cuh) rotates with
// mma.sync, each warp holding its 16 rows' split A fragments in registers (64
// of its 128), so an SM keeps 16 warps; its profile (NOTES run 30) is 125.6 M
// warp instructions at IPC 1.61, held by latency. This probe measures the other
// shape: a warpgroup of 4 warps encodes a 64-token slab with A and B in shared
// memory, so the MMA work is 24 wgmma instructions per slab. Per slab:
//   - stage: the slab's fp32 rows arrive by cp.async (each warp instruction one
//     whole 512-byte row, 16-byte chunks XOR-swizzled by row), issued while
//     the previous slab quantizes; the rows land in the A planes, which the
//     previous slab's products have finished reading;
//   - split: a thread per (row, half h) reads its 64 coordinates (4c + 2h, 4c +
//     2h + 1), sums the CPU's lanes 2h and 2h + 1 of ‖x‖² in order (fp64), and
//     writes x·s·2^10 split into fp16 hi and lo over the rows, in a K order
//     that makes each thread's 8 values one 16-byte store (B's columns use the
//     same order, so the products are unchanged);
//   - rotate: 24 m64n128k16 wgmma into one fp32 accumulator, the small
//     products first (x_lo·R_hi, x_hi·R_lo) and x_hi·R_hi last, so that the
//     rounding of the large sum is that of today's acc0 + (acc1 + acc2);
//   - quantize: the slab kernel's search, c² sums and code buffer
//     (CountBelow4, CodeByte), n' per row, then StoreChunk packs the version-1
//     V stream (dim-major, 64 codes per chunk) of the slab.
// Every CTA stages its head's R (hi and lo, 64 KB) once and runs WG warpgroups,
// each on its own slabs (A planes 32 KB, code buffer 8 KB), all running one
// copy of the code (a barrier id in a register).
//
// Scope (a measurement, not a codec): V only, head_dim 128, one rotation per
// head, whole slabs (tokens a multiple of 64), version-1 V streams of BITS-bit
// codes at [slab][head][128 chunks of 8·BITS bytes], n' at [token][head]. The
// check compares a sample of tokens with an fp64 CPU computation: every code
// equal or off by one within 2^-13 of a boundary, n' equal where all codes are
// (the probe exits 1 otherwise).
//
// Usage: encode_wgmma_probe [--tokens N] [--heads N] [--bits 2|3|4] [--warpgroups 2|3|4]
//                           [--overlap] [--ctas-per-head N] [--iters N] [--check-tokens N]
// (--overlap: two buffers per warpgroup, the next slab split while this one's
// products run; 2 warpgroups only. --check-tokens 0 skips the check.)
// Build-time switches: KVPLAN_PROBE_SKIP (1-3: skeletons for a cost
// breakdown), KVPLAN_PROBE_FP32_SUMS (1: the norms' sums in fp32).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/kernels/bench_device.h"
#include "bench/kernels/event_median.h"
#include "core/codebook.h"
#include "core/rotation.h"
#include "kvplan/kernels/encode_pack.cuh"

// Skeletons for a cost breakdown (wrong results; run with --check-tokens 0):
// 1 skips the pack, 2 also the quantization (the accumulators' sum is stored
// instead), 3 also the products.
#ifndef KVPLAN_PROBE_SKIP
#define KVPLAN_PROBE_SKIP 0
#endif
// 1: ‖x‖² and ‖c[codes]‖² summed in fp32 (FFMA / FADD, no conversions), not
// in the CPU's fp64 order, to measure what that exactness costs; n' may then
// differ from the CPU's by an fp16 ulp (the check counts those apart).
#ifndef KVPLAN_PROBE_FP32_SUMS
#define KVPLAN_PROBE_FP32_SUMS 0
#endif

namespace kvplan::bench {
namespace {

using kernels::internal::AddSquare;
using kernels::internal::CodeByte;
using kernels::internal::CorrectedNorm;
using kernels::internal::CountBelow4;
using kernels::internal::CpAsync16;
using kernels::internal::CpAsyncCommit;
using kernels::internal::CpAsyncWait;
using kernels::internal::FenceProxyAsyncShared;
using kernels::internal::FloatToHalfSaturate;
using kernels::internal::kSplitScale;
using kernels::internal::kSumScale;
using kernels::internal::LaneSumTotal;
using kernels::internal::NCoordinate;
using kernels::internal::SharedAddress;
using kernels::internal::SplitHalf2;
using kernels::internal::StoreChunk;

constexpr int kDim = 128;          // head_dim, V's one group
constexpr int kSlab = 64;          // tokens per slab: the wgmma's M
constexpr int kChunks = kDim / 8;  // 16-byte K chunks of a row
// A plane: 64 rows x 128 halves; B plane: 128 rows (output coordinates) x 128.
constexpr int kAPlaneBytes = kSlab * kDim * 2;
constexpr int kBPlaneBytes = kDim * kDim * 2;
constexpr int kCodeBytes = kSlab * kDim;

// Shared memory: B hi, B lo, then per warpgroup BUFFERS x (A hi, A lo), then
// per warpgroup its code buffer, then the scaled boundaries and c² of the
// codebook.
template <int WG, int BUFFERS = 1>
struct ProbeSmem {
  static constexpr int kB = 0;
  static constexpr int kA = 2 * kBPlaneBytes;
  static constexpr int kCodes = kA + WG * BUFFERS * 2 * kAPlaneBytes;
  static constexpr int kSquares = kCodes + WG * kCodeBytes;   // fp64 [16]
  static constexpr int kBoundaries = kSquares + 8 * 16;       // fp32 [15]
  static constexpr int kFloatSquares = kBoundaries + 4 * 16;  // fp32 [16]
  static constexpr int kBytes = kFloatSquares + 4 * 16;
};
static_assert(ProbeSmem<4>::kBytes <= 227 * 1024, "four warpgroups fit an SM");
static_assert(ProbeSmem<2, 2>::kBytes <= 227 * 1024, "two double-buffered warpgroups fit an SM");

// Byte offset of (row, 16-byte K chunk kc) in a plane of the no-swizzle
// K-major layout: 8x16-byte core matrices, K-adjacent ones 128 bytes apart
// (the descriptor's leading offset), 8-row groups 2048 apart (its stride).
__host__ __device__ constexpr int CoreOffset(int row, int kc) {
  return ((row >> 3) * kChunks + kc) * 128 + (row & 7) * 16;
}
// The coordinate at K position k: chunk kc = 2m + h holds coordinates 16m + 2h
// + {0, 1, 4, 5, 8, 9, 12, 13}, the values thread half h of a row owns for
// pairs 4m .. 4m + 3. Each 16-wide k-step holds coordinates 16m .. 16m + 15.
__host__ __device__ constexpr int KCoordinate(int k) {
  const int kc = k >> 3, e = k & 7;
  return 16 * (kc >> 1) + 4 * (e >> 1) + 2 * (kc & 1) + (e & 1);
}
// Descriptor of a no-swizzle K-major operand starting at `address`.
__device__ __forceinline__ uint64_t Descriptor(uint32_t address) {
  return static_cast<uint64_t>((address & 0x3ffff) >> 4) | static_cast<uint64_t>(128 >> 4) << 16 |
         static_cast<uint64_t>(2048 >> 4) << 32;
}

// d (+)= A·B for one m64n128k16 step of the warpgroup: A (64 x 16) and B
// (128 x 16, K-major) from shared memory through their descriptors, fp32
// accumulators in d (row 16w + lane/4 + 8·((i/2)%2), column 8·(i/4) + 2·(lane%4)
// + i%2 for warp w of the group). accumulate = false overwrites d.
__device__ __forceinline__ void WgmmaM64N128K16(float (&d)[64], uint64_t desc_a, uint64_t desc_b,
                                                bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n .reg .pred p;\n setp.ne.b32 p, %66, 0;\n"
      " wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63])
      : "l"(desc_a), "l"(desc_b), "r"(static_cast<int>(accumulate)));
#else
  (void)d, (void)desc_a, (void)desc_b, (void)accumulate;
  __trap();                           // wgmma is sm_90a only
#endif
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KVPLAN_PROBE_WGMMA(text) asm volatile(text ::: "memory")
#else
#define KVPLAN_PROBE_WGMMA(text)
#endif
__device__ __forceinline__ void WgmmaFence() { KVPLAN_PROBE_WGMMA("wgmma.fence.sync.aligned;\n"); }
__device__ __forceinline__ void WgmmaCommit() {
  KVPLAN_PROBE_WGMMA("wgmma.commit_group.sync.aligned;\n");
}
__device__ __forceinline__ void WgmmaWaitAll(float (&d)[64]) {
  KVPLAN_PROBE_WGMMA("wgmma.wait_group.sync.aligned 0;\n");
#pragma unroll
  for (int i = 0; i < 64; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// Barrier `id` (1..4) of one warpgroup's 128 threads. A register operand, so
// that all warpgroups run one copy of the code: four copies of this fully
// unrolled body overflowed the instruction cache (NOTES run 31).
__device__ __forceinline__ void GroupBarrier(int id) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}

struct ProbeParams {
  const float* v;           // [tokens][heads][128]
  const float* rotations;   // [heads][128][128], R row-major (y = R·x)
  const float* boundaries;  // fp32 [2^bits - 1], unit-variance codebook
  const float* centroids;   // fp32 [2^bits]
  uint8_t* streams;         // [slabs][heads][128 · 8 · bits]
  uint16_t* norms;          // fp16 [tokens][heads]
  int tokens, heads;
};

// Stages slab `slab`'s 64 fp32 rows into `stage` with cp.async (each warp
// instruction one whole 512-byte row), chunk c of row r at r·512 + 16·(c ^ (r
// & 7)): the readers' 8-byte loads (8 rows x both halves per half-warp) then
// hit distinct banks.
__device__ __forceinline__ void StageRows(const ProbeParams& p, int head, int slab, char* stage,
                                          int wt) {
  // Thread wt copies chunk c = wt % 32 of rows wt / 32 + 4i: r & 7 takes two values.
  const int r0 = wt >> 5, c = wt & 31;
  const float* src =
      p.v + (static_cast<int64_t>(slab * kSlab + r0) * p.heads + head) * kDim + 4 * c;
  const int64_t src_step = static_cast<int64_t>(4) * p.heads * kDim;
  char* dst = stage + r0 * 512;
  const int swizzled[2] = {16 * (c ^ r0), 16 * (c ^ (r0 + 4))};
#pragma unroll
  for (int i = 0; i < 16; ++i) {
    CpAsync16(dst + 2048 * i + swizzled[i & 1], src);
    src += src_step;
  }
  CpAsyncCommit();
}

// One warpgroup's view: its barrier, buffers and each thread's roles.
template <int WG, int BUFFERS>
struct Group {
  int id;           // named barrier, 1 .. WG
  char* buffer0;    // A planes (hi, then lo 16 KB on), or a slab's staged fp32 rows
  uint8_t* code_s;  // the slab's codes, CodeByte order
  uint32_t b_hi;    // shared address of R's hi plane (lo follows)
  int wt, lane;
  // Load phase: row `row` of the slab, half h. Lanes 8q .. 8q + 7 hold rows
  // 0-3 of one 8-row group with one h and rows 4-7 with the other, so that
  // their 16-byte A stores hit distinct banks; the partner half is lane ^ 12.
  int row, h;
  // Quantize phase: rows q_row, q_row + 8, quad lane t; norm_lane loaded
  // q_row (h = 0), norm_lane | 16 loaded q_row + 8.
  int q_row, t, norm_lane;

  __device__ Group(char* smem, int group) {
    using Smem = ProbeSmem<WG, BUFFERS>;
    id = group + 1;
    buffer0 = smem + Smem::kA + BUFFERS * 2 * kAPlaneBytes * group;
    code_s = reinterpret_cast<uint8_t*>(smem + Smem::kCodes + kCodeBytes * group);
    b_hi = SharedAddress(smem + Smem::kB);
    wt = threadIdx.x & 127;
    lane = wt & 31;
    const int warp = wt >> 5;
    h = (lane >> 2) & 1;
    row = 16 * warp + 8 * (lane >> 4) + (lane & 3) + 4 * (h ^ ((lane >> 3) & 1));
    q_row = 16 * warp + (lane >> 2);
    t = lane & 3;
    const int rr = lane >> 2;
    norm_lane = (rr & 3) | ((rr >> 2) & 1) << 3;
  }
  __device__ char* buffer(int i) const { return buffer0 + i * 2 * kAPlaneBytes; }
};

// The staged fp32 rows of `buf` into its A planes: returns the norm of the
// thread's row (fp64 in the CPU's order; both halves hold it). The caller
// synchronises the group before the products read the planes.
template <int WG, int BUFFERS>
__device__ __forceinline__ double SplitRows(const Group<WG, BUFFERS>& g, char* buf) {
  CpAsyncWait<0>();
  GroupBarrier(g.id);
  float2 x[32];
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    x[c] = *reinterpret_cast<const float2*>(buf + g.row * 512 + 16 * (c ^ (g.row & 7)) + 8 * g.h);
  }
#if KVPLAN_PROBE_FP32_SUMS
  float lane_a = 0.0f, lane_b = 0.0f;
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    lane_a = fmaf(x[c].x, x[c].x, lane_a);
    lane_b = fmaf(x[c].y, x[c].y, lane_b);
  }
  const float pair = lane_a + lane_b;
  const float norm32 = sqrtf(pair + __shfl_xor_sync(0xffffffffu, pair, 12));
  const double norm = norm32;
  const float s =
      (norm32 > 0.0f && isfinite(norm32) ? sqrtf(float{kDim}) / norm32 : 0.0f) * kSplitScale;
#else
  double lane_a = 0.0, lane_b = 0.0;  // the CPU's lanes 2h, 2h + 1
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    lane_a = AddSquare(lane_a, x[c].x);
    lane_b = AddSquare(lane_b, x[c].y);
  }
  const double pair = __dadd_rn(lane_a, lane_b);
  const double norm = sqrt(__dadd_rn(pair, __shfl_xor_sync(0xffffffffu, pair, 12)));
  const double sqrt_d = sqrt(static_cast<double>(kDim));
  const float s =
      (norm > 0.0 && isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f) * kSplitScale;
#endif
  GroupBarrier(g.id);  // every row read before the planes are overwritten
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    uint32_t hi[4], lo[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) SplitHalf2(x[4 * m + q].x * s, x[4 * m + q].y * s, hi[q], lo[q]);
    const int offset = CoreOffset(g.row, 2 * m + g.h);
    *reinterpret_cast<uint4*>(buf + offset) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    *reinterpret_cast<uint4*>(buf + kAPlaneBytes + offset) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
  FenceProxyAsyncShared();
  return norm;
}

// Issues the slab's 24 products into acc (not waited for): the small ones
// first, so that the large sum is rounded as today's acc0 + (acc1 + acc2).
__device__ __forceinline__ void IssueProducts(float (&acc)[64], const char* buf, uint32_t b_hi) {
  const uint32_t a_hi = SharedAddress(buf), a_lo = a_hi + kAPlaneBytes, b_lo = b_hi + kBPlaneBytes;
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    WgmmaM64N128K16(acc, Descriptor(a_lo + 256 * kk), Descriptor(b_hi + 256 * kk), kk > 0);
  }
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    WgmmaM64N128K16(acc, Descriptor(a_hi + 256 * kk), Descriptor(b_lo + 256 * kk), true);
  }
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    WgmmaM64N128K16(acc, Descriptor(a_hi + 256 * kk), Descriptor(b_hi + 256 * kk), true);
  }
  WgmmaCommit();
}

// Codes, c² sums and n' of the slab from its products, then the packed stream.
template <int BITS, int WG, int BUFFERS>
__device__ __forceinline__ void QuantizeAndPack(const ProbeParams& p, const Group<WG, BUFFERS>& g,
                                                const float (&acc)[64], const double (&row_norm)[2],
                                                int head, int slab, const char* smem) {
  using Smem = ProbeSmem<WG, BUFFERS>;
  const double* squares = reinterpret_cast<const double*>(smem + Smem::kSquares);
  const float* boundaries = reinterpret_cast<const float*>(smem + Smem::kBoundaries);
#if KVPLAN_PROBE_SKIP >= 2
  double code_sum[2] = {0.0, 0.0};
#pragma unroll
  for (int i = 0; i < 64; ++i) code_sum[i & 1] += acc[i];
  (void)squares, (void)boundaries;
#else
  int code_row[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) code_row[r] = CodeByte(g.t * kSlab + g.q_row + 8 * r, true);
#if KVPLAN_PROBE_FP32_SUMS
  const float* float_squares = reinterpret_cast<const float*>(smem + Smem::kFloatSquares);
  float code_sum[2] = {0.0f, 0.0f};
#else
  double code_sum[2] = {0.0, 0.0};
#endif
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const float z[4] = {acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]};
    int offset[4];  // 4·code
    CountBelow4<BITS>(z, boundaries, offset);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int r = e >> 1, step = 8 * j + 4 * (e & 1), code = offset[e] >> 2;
      g.code_s[code_row[r] + step * kSlab] = static_cast<uint8_t>(code);
#if KVPLAN_PROBE_FP32_SUMS
      code_sum[r] += float_squares[code];
#else
      code_sum[r] = __dadd_rn(code_sum[r], squares[code]);
#endif
    }
  }
#endif
#if KVPLAN_PROBE_FP32_SUMS && KVPLAN_PROBE_SKIP < 2
  float totals[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float pair = code_sum[r] + __shfl_xor_sync(0xffffffffu, code_sum[r], 1);
    totals[r] = pair + __shfl_xor_sync(0xffffffffu, pair, 2);
  }
  if (g.t < 2) {
    const int own = g.q_row + 8 * g.t;
    p.norms[static_cast<int64_t>(slab * kSlab + own) * p.heads + head] =
        FloatToHalfSaturate(static_cast<float>(g.t == 0 ? row_norm[0] : row_norm[1]) *
                            sqrtf(float{kDim}) / sqrtf(g.t == 0 ? totals[0] : totals[1]));
  }
#else
  const double total0 = LaneSumTotal(code_sum[0]), total1 = LaneSumTotal(code_sum[1]);
  if (g.t < 2) {
    const int own = g.q_row + 8 * g.t;
    p.norms[static_cast<int64_t>(slab * kSlab + own) * p.heads + head] =
        CorrectedNorm(g.t == 0 ? row_norm[0] : row_norm[1], sqrt(static_cast<double>(kDim)),
                      g.t == 0 ? total0 : total1);
  }
#endif
  GroupBarrier(g.id);
#if KVPLAN_PROBE_SKIP == 0
  uint8_t* stream = p.streams + (static_cast<int64_t>(slab) * p.heads + head) * kDim * 8 * BITS;
  StoreChunk<BITS>(stream, g.code_s, 0, g.wt, true);
#endif
}

// Warpgroup `group` (0 .. WG - 1) encodes slabs first, first + WG, ... < end.
// One buffer: each slab's stages in turn (rows staged a slab ahead, into the
// planes once the products have read them). Two buffers (--overlap): the
// next slab's rows are split while this slab's products run.
template <int BITS, int WG, int BUFFERS>
__device__ __forceinline__ void EncodeSlabs(const ProbeParams& p, int head, int group, int first,
                                            int end, char* smem) {
  const Group<WG, BUFFERS> g(smem, group);
  if (first >= end) return;
  StageRows(p, head, first, g.buffer(0), g.wt);
  double norm = 0.0;
  if constexpr (BUFFERS == 2) {
    norm = SplitRows(g, g.buffer(0));
    GroupBarrier(g.id);
    if (first + WG < end) StageRows(p, head, first + WG, g.buffer(1), g.wt);
  }
  int cur = 0;
  for (int slab = first; slab < end; slab += WG) {
    if constexpr (BUFFERS == 1) {
      norm = SplitRows(g, g.buffer(0));
      GroupBarrier(g.id);
    }
    float acc[64];
#if KVPLAN_PROBE_SKIP >= 3
#pragma unroll
    for (int i = 0; i < 64; ++i) acc[i] = static_cast<float>(norm) * i;
#else
    IssueProducts(acc, g.buffer(cur), g.b_hi);
#endif
    double next_norm = 0.0;
    if constexpr (BUFFERS == 2) {
      if (slab + WG < end) next_norm = SplitRows(g, g.buffer(cur ^ 1));
    }
    const double row_norm[2] = {__shfl_sync(0xffffffffu, norm, g.norm_lane),
                                __shfl_sync(0xffffffffu, norm, g.norm_lane | 16)};
    WgmmaWaitAll(acc);
    GroupBarrier(g.id);  // the whole group's products read the planes
    const int refill = slab + (BUFFERS == 2 ? 2 : 1) * WG;
    if (refill < end) StageRows(p, head, refill, g.buffer(cur), g.wt);
    QuantizeAndPack<BITS>(p, g, acc, row_norm, head, slab, smem);
    if constexpr (BUFFERS == 2) {
      norm = next_norm;
      cur ^= 1;
    }
  }
}

// grid (ctas_per_head, heads), 128·WG threads.
template <int BITS, int WG, int BUFFERS>
__global__ void __launch_bounds__(128 * WG, 1) EncodeVProbeKernel(ProbeParams p) {
  extern __shared__ __align__(128) char smem[];
  using Smem = ProbeSmem<WG, BUFFERS>;
  const int head = blockIdx.y, tid = threadIdx.x;
  // Stage R·2^10 as hi and lo planes: B row n holds output coordinate
  // 8(n/8) + NCoordinate(n % 8), K position k input coordinate KCoordinate(k).
  const float* rotation = p.rotations + static_cast<int64_t>(head) * kDim * kDim;
  for (int q = tid; q < kDim * kChunks; q += blockDim.x) {
    const int n = q / kChunks, kc = q % kChunks;
    const float* r = rotation + (8 * (n >> 3) + NCoordinate(n & 7)) * kDim;
    uint32_t hi[4], lo[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      SplitHalf2(r[KCoordinate(8 * kc + 2 * e)] * kSplitScale,
                 r[KCoordinate(8 * kc + 2 * e + 1)] * kSplitScale, hi[e], lo[e]);
    }
    *reinterpret_cast<uint4*>(smem + Smem::kB + CoreOffset(n, kc)) =
        make_uint4(hi[0], hi[1], hi[2], hi[3]);
    *reinterpret_cast<uint4*>(smem + Smem::kB + kBPlaneBytes + CoreOffset(n, kc)) =
        make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
  constexpr int kCodes = 1 << BITS;
  double* squares = reinterpret_cast<double*>(smem + Smem::kSquares);
  float* boundaries = reinterpret_cast<float*>(smem + Smem::kBoundaries);
  for (int k = tid; k < kCodes; k += blockDim.x) {
    const double c = p.centroids[k];
    squares[k] = __dmul_rn(c, c);
    reinterpret_cast<float*>(smem + Smem::kFloatSquares)[k] = p.centroids[k] * p.centroids[k];
    if (k < kCodes - 1) boundaries[k] = p.boundaries[k] * kSumScale;
  }
  FenceProxyAsyncShared();
  __syncthreads();
  const int slabs = p.tokens / kSlab;
  const int per_cta = (slabs + gridDim.x - 1) / gridDim.x;
  const int first = blockIdx.x * per_cta, end = min(slabs, first + per_cta);
  const int group = tid >> 7;
  EncodeSlabs<BITS, WG, BUFFERS>(p, head, group, first + group, end, smem);
}

template <int BITS, int WG, int BUFFERS>
cudaError_t Launch(const ProbeParams& p, int ctas_per_head, cudaStream_t stream) {
  const auto kernel = EncodeVProbeKernel<BITS, WG, BUFFERS>;
  const int bytes = ProbeSmem<WG, BUFFERS>::kBytes;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(ctas_per_head, p.heads), 128 * WG, bytes, stream>>>(p);
  return cudaGetLastError();
}

// Warpgroups 2, 3 or 4 with one buffer each, or 2 with two (overlap).
template <int BITS>
cudaError_t LaunchFor(int warpgroups, bool overlap, const ProbeParams& p, int ctas_per_head,
                      cudaStream_t stream) {
  if (overlap)
    return warpgroups == 2 ? Launch<BITS, 2, 2>(p, ctas_per_head, stream) : cudaErrorInvalidValue;
  switch (warpgroups) {
    case 2:
      return Launch<BITS, 2, 1>(p, ctas_per_head, stream);
    case 3:
      return Launch<BITS, 3, 1>(p, ctas_per_head, stream);
    case 4:
      return Launch<BITS, 4, 1>(p, ctas_per_head, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t LaunchProbe(int bits, int warpgroups, bool overlap, const ProbeParams& p,
                        int ctas_per_head, cudaStream_t stream) {
  switch (bits) {
    case 2:
      return LaunchFor<2>(warpgroups, overlap, p, ctas_per_head, stream);
    case 3:
      return LaunchFor<3>(warpgroups, overlap, p, ctas_per_head, stream);
    case 4:
      return LaunchFor<4>(warpgroups, overlap, p, ctas_per_head, stream);
  }
  return cudaErrorInvalidValue;
}

#define CHECK_CUDA(call)                                               \
  do {                                                                 \
    const cudaError_t e_ = (call);                                     \
    if (e_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                    \
    }                                                                  \
  } while (0)

uint16_t HalfBits(float f) { return __half_as_ushort(__float2half_rn(f)); }

// The CPU side of the check, in fp64 (z exact up to fp64 rounding): returns
// the number of bad codes; counts flips within 2^-13 of a boundary.
struct CheckResult {
  int64_t codes = 0, flips = 0, bad = 0, norms = 0, bad_norms = 0, ulp_norms = 0;
};

CheckResult Check(const std::vector<float>& v, const std::vector<float>& rotations,
                  const Codebook& book, int bits, const std::vector<uint8_t>& streams,
                  const std::vector<uint16_t>& norms, int tokens, int heads) {
  CheckResult res;
  const double sqrt_d = std::sqrt(double{kDim});
  for (int token = 0; token < tokens; ++token) {
    for (int head = 0; head < heads; ++head) {
      const float* x = v.data() + (static_cast<int64_t>(token) * heads + head) * kDim;
      double lane[4] = {0, 0, 0, 0};
      for (int i = 0; i < kDim; ++i) lane[i & 3] += double{x[i]} * x[i];
      const double norm = std::sqrt((lane[0] + lane[1]) + (lane[2] + lane[3]));
      const float s = norm > 0.0 && std::isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f;
      const float* r = rotations.data() + static_cast<int64_t>(head) * kDim * kDim;
      const uint8_t* stream =
          streams.data() + (static_cast<int64_t>(token / kSlab) * heads + head) * kDim * 8 * bits;
      double code_lane[4] = {0, 0, 0, 0};
      bool all_equal = true;
      for (int i = 0; i < kDim; ++i) {
        double z = 0.0;
        for (int j = 0; j < kDim; ++j) z += double{r[i * kDim + j]} * double{x[j] * s};
        int want = 0;
        while (want < (1 << bits) - 1 && book.boundaries[want] < z) ++want;
        const int64_t bit = static_cast<int64_t>(i * kSlab + token % kSlab) * bits;
        uint32_t word = 0;
        std::memcpy(&word, stream + (bit / 32) * 4, 4);
        uint64_t wide = word;
        if (bit % 32 + bits > 32) {
          uint32_t next = 0;
          std::memcpy(&next, stream + (bit / 32 + 1) * 4, 4);
          wide |= uint64_t{next} << 32;
        }
        const int got = static_cast<int>(wide >> (bit % 32) & ((1u << bits) - 1));
        ++res.codes;
        if (got != want) {
          all_equal = false;
          const int lower = std::min(got, want);
          const double margin = std::abs(z - book.boundaries[lower]) / std::max(1.0, std::abs(z));
          if (std::abs(got - want) == 1 && margin <= 1.0 / 8192) {
            ++res.flips;
          } else if (res.bad++ < 8) {
            std::printf("bad code: token %d head %d coordinate %d: got %d want %d (z %.7f)\n",
                        token, head, i, got, want, z);
          }
        }
        const double c = book.centroids[got];
        code_lane[i & 3] += c * c;
      }
      if (!all_equal) continue;
      ++res.norms;
      const double code_norm =
          std::sqrt((code_lane[0] + code_lane[1]) + (code_lane[2] + code_lane[3]));
      const uint16_t want = HalfBits(static_cast<float>(norm * sqrt_d / code_norm));
      const uint16_t got = norms[static_cast<int64_t>(token) * heads + head];
      // The fp32-sum build (KVPLAN_PROBE_FP32_SUMS) may be an fp16 ulp off.
      if (KVPLAN_PROBE_FP32_SUMS && got != want && std::abs(int{got} - int{want}) == 1) {
        ++res.ulp_norms;
      } else if (got != want && res.bad_norms++ < 8) {
        std::printf("bad n': token %d head %d: got 0x%04x want 0x%04x\n", token, head, got, want);
      }
    }
  }
  return res;
}

int Main(int argc, char** argv) {
  int tokens = 32768, heads = 8, bits = 3, warpgroups = 4, ctas_per_head = 0, iters = 20;
  int check_tokens = 256;
  bool overlap = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--overlap") {
      overlap = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "flag %s needs a value\n", flag.c_str());
      return 2;
    }
    ++i;
    const int value = std::atoi(argv[i]);
    if (flag == "--tokens")
      tokens = value;
    else if (flag == "--heads")
      heads = value;
    else if (flag == "--bits")
      bits = value;
    else if (flag == "--warpgroups")
      warpgroups = value;
    else if (flag == "--ctas-per-head")
      ctas_per_head = value;
    else if (flag == "--iters")
      iters = value;
    else if (flag == "--check-tokens")
      check_tokens = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (tokens % kSlab != 0 || tokens <= 0 || heads <= 0 || bits < 2 || bits > 4) {
    std::fprintf(stderr, "--tokens must be a positive multiple of 64, --bits 2..4\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  if (ctas_per_head <= 0) ctas_per_head = std::max(1, prop.multiProcessorCount / heads);
  check_tokens = std::min(check_tokens, tokens);
  const Codebook& book = LloydMaxCodebook(bits);
  std::vector<float> rotations;
  for (int head = 0; head < heads; ++head) {
    const Rotation r = HaarRotation(kDim, 1000 + head);
    rotations.insert(rotations.end(), r.matrix.begin(), r.matrix.end());
  }
  const int64_t values = static_cast<int64_t>(tokens) * heads * kDim;
  const int64_t stream_bytes = static_cast<int64_t>(tokens / kSlab) * heads * kDim * 8 * bits;
  float *v, *rot, *bnd, *cen;
  uint8_t* streams;
  uint16_t* norms;
  CHECK_CUDA(cudaMalloc(&v, values * 4));
  CHECK_CUDA(cudaMalloc(&rot, rotations.size() * 4));
  CHECK_CUDA(cudaMalloc(&bnd, book.boundaries.size() * 4));
  CHECK_CUDA(cudaMalloc(&cen, book.centroids.size() * 4));
  CHECK_CUDA(cudaMalloc(&streams, stream_bytes));
  CHECK_CUDA(cudaMalloc(&norms, static_cast<int64_t>(tokens) * heads * 2));
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  CHECK_CUDA(FillRandomFloat(v, values, /*seed=*/7, 0.5f, stream));
  CHECK_CUDA(cudaMemcpy(rot, rotations.data(), rotations.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(
      cudaMemcpy(bnd, book.boundaries.data(), book.boundaries.size() * 4, cudaMemcpyHostToDevice));
  CHECK_CUDA(
      cudaMemcpy(cen, book.centroids.data(), book.centroids.size() * 4, cudaMemcpyHostToDevice));
  const ProbeParams p{v, rot, bnd, cen, streams, norms, tokens, heads};
  CHECK_CUDA(LaunchProbe(bits, warpgroups, overlap, p, ctas_per_head, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));

  // Check the first check_tokens tokens (whole slabs).
  if (check_tokens > 0) {
    std::vector<float> host_v(static_cast<int64_t>(check_tokens) * heads * kDim);
    CHECK_CUDA(cudaMemcpy(host_v.data(), v, host_v.size() * 4, cudaMemcpyDeviceToHost));
    const int64_t check_stream_bytes =
        static_cast<int64_t>((check_tokens + kSlab - 1) / kSlab) * heads * kDim * 8 * bits;
    std::vector<uint8_t> host_streams(check_stream_bytes);
    CHECK_CUDA(
        cudaMemcpy(host_streams.data(), streams, check_stream_bytes, cudaMemcpyDeviceToHost));
    std::vector<uint16_t> host_norms(static_cast<int64_t>(check_tokens) * heads);
    CHECK_CUDA(cudaMemcpy(host_norms.data(), norms, host_norms.size() * 2, cudaMemcpyDeviceToHost));
    const CheckResult res =
        Check(host_v, rotations, book, bits, host_streams, host_norms, check_tokens, heads);
    std::printf(
        "check: %lld codes, %lld flips at boundaries, %lld bad; %lld n' compared, %lld an ulp "
        "off, %lld bad\n",
        static_cast<long long>(res.codes), static_cast<long long>(res.flips),
        static_cast<long long>(res.bad), static_cast<long long>(res.norms),
        static_cast<long long>(res.ulp_norms), static_cast<long long>(res.bad_norms));
    if (res.bad > 0 || res.bad_norms > 0) return 1;
  }

  // Five launches per sample, so that the host stays ahead of the card.
  const double us = MedianEventMicros(stream, iters, 5, [&](int) {
    for (int k = 0; k < 5; ++k)
      CHECK_CUDA(LaunchProbe(bits, warpgroups, overlap, p, ctas_per_head, stream));
  });
  // Copy bandwidth in the same process: a 1 GiB device-to-device copy.
  const size_t copy_bytes = size_t{1} << 30;
  void *a, *b;
  CHECK_CUDA(cudaMalloc(&a, copy_bytes));
  CHECK_CUDA(cudaMalloc(&b, copy_bytes));
  const double copy_us = MedianEventMicros(stream, 10, 1, [&](int) {
    CHECK_CUDA(cudaMemcpyAsync(b, a, copy_bytes, cudaMemcpyDeviceToDevice, stream));
  });
  const double copy_gbs = 2.0 * copy_bytes / copy_us * 1e-3;
  const double bytes = static_cast<double>(values) * 4 + stream_bytes + tokens * heads * 2.0;
  const double gbs = bytes / us * 1e-3;
  std::printf(
      "V encode probe: %d tokens x %d heads, V%d, %d warpgroups%s, %d CTAs per head: %.1f us, "
      "%.0f GB/s (%.1f%% of copy %.0f GB/s)\n",
      tokens, heads, bits, warpgroups, overlap ? " (overlapped)" : "", ctas_per_head, us, gbs,
      100.0 * gbs / copy_gbs, copy_gbs);
  return 0;
}

}  // namespace
}  // namespace kvplan::bench

int main(int argc, char** argv) { return kvplan::bench::Main(argc, argv); }
