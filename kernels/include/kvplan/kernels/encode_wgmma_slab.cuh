// The warpgroup slab machinery of the wgmma encode (sm_90a, head_dim 128),
// device code shared by K's half (encode_k_wgmma.cuh) and V's
// (encode_v_wgmma.cuh); the kernel that runs them is encode_wgmma.cuh's.
//
// The slab kernel (encode_pack.cuh) rotates with mma.sync, each warp holding
// its rows' split A fragments in registers, so an SM keeps 16 warps and the
// kernel waits on latency (NOTES.md run 30). Here a warpgroup (128 threads)
// encodes a 64-token slab with both operands in shared memory (the design
// probe of NOTES run 31):
//   - stage: the slab's fp32 rows arrive by cp.async, each warp instruction
//     one whole 512-byte row, 16-byte chunks XOR-swizzled by row; they are
//     issued while the previous slab quantizes, into the warpgroup's A planes,
//     which that slab's products have finished reading;
//   - split (K's or V's): a thread per (row, half h) reads its 64 values of
//     positions 4c + 2h, 4c + 2h + 1, sums the CPU's norm lanes 2h and 2h + 1
//     in order (fp64, as encode_pack.cuh), and writes x·s·2^10 as fp16 hi and
//     lo over the rows, in a K order that makes each thread's 8 values one
//     16-byte store (B's K axis is staged in the same order);
//   - rotate: 24 m64n128k16 wgmma into one fp32 accumulator, the small
//     products first (x_lo·R_hi, x_hi·R_lo, then x_hi·R_hi), so the large sum
//     rounds as the slab kernel's acc0 + (acc1 + acc2): the same error bound
//     (tests/kernels/encode_pack_test.cc), codes equal to the CPU's but where
//     z lies within it of a boundary. K's B is its groups' rotations on the
//     block diagonal (a group spans whole 16-position blocks), so one product
//     serves every group;
//   - quantize and store (K's or V's): each code from one load of its
//     width's code grid (code_grid.h), the slab kernel's c² sums, code buffer
//     and stores (whole pages of either grammar, or code by code with
//     atomics).
// A CTA stages its head's B once (hi and lo, 64 KB) and runs kWgmmaGroups
// warpgroups, each on every kWgmmaGroups-th slab of the CTA's range; one CTA
// per SM (~226 KB of shared memory, WgmmaSmem::kBytes).
#ifndef KVPLAN_KERNELS_ENCODE_WGMMA_SLAB_CUH_
#define KVPLAN_KERNELS_ENCODE_WGMMA_SLAB_CUH_

#include <cuda_fp16.h>

#include <cstdint>

#include "kvplan/kernels/device_utils.cuh"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/params.h"
#include "kvplan/kernels/wgmma.cuh"

namespace kvplan::kernels::internal {

inline constexpr int kWgmmaDim = 128;   // the only head_dim of this encode
inline constexpr int kWgmmaGroups = 3;  // warpgroups per CTA (168 registers each)
inline constexpr int kWgmmaThreads = 128 * kWgmmaGroups;
static_assert(kSlabThreads == 128 && kSlabTokens == 64, "a warpgroup per 64-token slab");

// Shared memory of one CTA, in bytes: B's hi and lo planes, then per
// warpgroup its A planes (hi, lo; between a slab's products and the next
// slab's split they hold that slab's staged fp32 rows), its code buffer
// (encode_pack.cuh's CodeByte order), n' per group, slots, and K's per-group
// row sums (n, then c² totals; in between the scales s); then the c² of every
// width's codes, every width's code grid, K's permutation pairs, the head's
// descriptor and its fragment-page geometry.
struct WgmmaSmem {
  static constexpr int kRotationPlane = kWgmmaDim * kWgmmaDim * 2;
  static constexpr int kRowPlane = kSlabTokens * kWgmmaDim * 2;  // = 64 fp32 rows
  static constexpr int kGroupRows = kMaxKGroups * kSlabTokens;   // [group][row]
  static constexpr int kRotation = 0;
  static constexpr int kRows = kRotation + 2 * kRotationPlane;
  static constexpr int kCodes = kRows + kWgmmaGroups * 2 * kRowPlane;
  static constexpr int kNorms = kCodes + kWgmmaGroups * kSlabTokens * kWgmmaDim;
  static constexpr int kSlots = kNorms + kWgmmaGroups * 2 * kGroupRows;
  static constexpr int kRowNorms = kSlots + kWgmmaGroups * 8 * kSlabTokens;
  static constexpr int kGroupSums = kRowNorms + kWgmmaGroups * 8 * kGroupRows;
  static constexpr int kSquares = kGroupSums + kWgmmaGroups * 8 * kGroupRows;
  static constexpr int kGrid = kSquares + 8 * kCentroidEntries;  // CodeGrid (code_grid.h)
  static constexpr int kPermutation = kGrid + Pad16(static_cast<int>(sizeof(CodeGrid)));
  static constexpr int kPairGroups = kPermutation + 4 * kWgmmaDim / 2;  // u8 per position pair
  static constexpr int kDesc = kPairGroups + kWgmmaDim / 2;
  static constexpr int kFragment = kDesc + static_cast<int>(sizeof(PackedHeadDesc));
  static constexpr int kBytes = kFragment + static_cast<int>(sizeof(FragmentHeadGeometry));
  static_assert(kSquares % 16 == 0 && kGrid % 16 == 0 && kDesc % alignof(PackedHeadDesc) == 0,
                "aligned tables");
};
// The largest dynamic shared memory of one CTA (227 KB on sm_90).
static_assert(WgmmaSmem::kBytes <= 227 * 1024, "one CTA per SM");
static_assert(2 * WgmmaSmem::kRowPlane == kSlabTokens * kWgmmaDim * 4,
              "a slab's fp32 rows fill its A planes");

// Byte offset of (row, 16-byte K chunk kc) in a plane of the no-swizzle
// K-major layout (wgmma.cuh): K-adjacent core matrices 128 bytes apart, 8-row
// groups 2048.
inline constexpr int kCoreLeading = 128, kCoreStride = 2048;
__host__ __device__ constexpr int CoreOffset(int row, int kc) {
  return ((row >> 3) * (kWgmmaDim / 8) + kc) * 128 + (row & 7) * 16;
}
// The input position (V: coordinate; K: permuted position) at K index k:
// chunk kc = 2m + h holds positions 16m + 2h + {0, 1, 4, 5, 8, 9, 12, 13}, the
// values a split thread of half h owns for its pairs 4m .. 4m + 3. Each
// 16-wide k-step holds 16m .. 16m + 15.
__host__ __device__ constexpr int WgmmaKPosition(int k) {
  const int kc = k >> 3, e = k & 7;
  return 16 * (kc >> 1) + 4 * (e >> 1) + 2 * (kc & 1) + (e & 1);
}

// Barrier `id` (1 .. kWgmmaGroups) of one warpgroup: the id in a register
// (device_utils.cuh), so that all warpgroups run one copy of the unrolled body
// (four copies overflowed the instruction cache: NOTES.md run 31).
__device__ __forceinline__ void WarpgroupBarrier(int id) { NamedBarrier(id, 128); }
__device__ __forceinline__ bool WarpgroupBarrierAnd(int id, bool pred) {
  return NamedBarrierAnd(id, 128, pred);
}

// Splits a rotation times kSplitScale into the fp16 hi and lo B planes:
// rt(j, i) = R[i][j] for input position j and output position i; row n holds
// output position 8(n/8) + NCoordinate(n % 8) (so that a quad's thread t
// accumulates positions ≡ t mod 4 in increasing order, the CPU's c² lanes), K
// index k input position WgmmaKPosition(k). Whole CTA.
template <typename Rt>
__device__ __forceinline__ void StageWgmmaRotation(char* rotation_s, Rt rt, int tid) {
  constexpr int kChunks = kWgmmaDim / 8;
  // n fastest: a warp reads 32 consecutive output positions of each Rᵀ row.
  for (int q = tid; q < kWgmmaDim * kChunks; q += kWgmmaThreads) {
    const int n = q % kWgmmaDim, kc = q / kWgmmaDim;
    const int i = 8 * (n >> 3) + NCoordinate(n & 7);
    uint32_t hi[4], lo[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      SplitHalf2(rt(WgmmaKPosition(8 * kc + 2 * e), i) * kSplitScale,
                 rt(WgmmaKPosition(8 * kc + 2 * e + 1), i) * kSplitScale, hi[e], lo[e]);
    }
    char* chunk = rotation_s + CoreOffset(n, kc);
    *reinterpret_cast<uint4*>(chunk) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    *reinterpret_cast<uint4*>(chunk + WgmmaSmem::kRotationPlane) =
        make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
}

// One warpgroup's buffers and each thread's roles in them.
struct SlabWarpgroup {
  int id;              // barrier id
  int wt, lane;        // thread index in the warpgroup, lane
  char* rows;          // A planes (hi, then lo), or the slab's staged fp32 rows
  uint8_t* code_s;     // the slab's codes (CodeByte order)
  uint16_t* norm_s;    // the slab's n' [group][row]
  int64_t* slot_s;     // the slab's slots
  double* row_norms;   // K: the slab's n [group][row]
  double* group_sums;  // K: c² totals [group][row]; before the products, s (float)
  // Split phase: row `row`, half h. Lanes 8q .. 8q + 7 hold rows 0-3 of one
  // 8-row group with one h and rows 4-7 with the other, so their 16-byte A
  // stores hit distinct banks; the partner half is lane ^ 12.
  int row, h;
  // Quantize phase: rows q_row and q_row + 8, quad lane t; lanes norm_lane
  // and norm_lane | 16 split those rows (with h = 0).
  int q_row, t, norm_lane;

  __device__ SlabWarpgroup(char* smem, int group) {
    using S = WgmmaSmem;
    id = group + 1;
    wt = threadIdx.x & 127;
    lane = wt & 31;
    rows = smem + S::kRows + 2 * S::kRowPlane * group;
    code_s = reinterpret_cast<uint8_t*>(smem + S::kCodes) + kSlabTokens * kWgmmaDim * group;
    norm_s = reinterpret_cast<uint16_t*>(smem + S::kNorms) + S::kGroupRows * group;
    slot_s = reinterpret_cast<int64_t*>(smem + S::kSlots) + kSlabTokens * group;
    row_norms = reinterpret_cast<double*>(smem + S::kRowNorms) + S::kGroupRows * group;
    group_sums = reinterpret_cast<double*>(smem + S::kGroupSums) + S::kGroupRows * group;
    const int warp = wt >> 5;
    h = (lane >> 2) & 1;
    row = 16 * warp + 8 * (lane >> 4) + (lane & 3) + 4 * (h ^ ((lane >> 3) & 1));
    q_row = 16 * warp + (lane >> 2);
    t = lane & 3;
    const int r = lane >> 2;
    norm_lane = (r & 3) | ((r >> 2) & 1) << 3;
  }
  // K's scales s [group][row] as floats over group_sums: float i shares bytes
  // with double i / 2, another row's, often another warp's. So every read of
  // group_sums (c² totals, SplitKAnyRows' half sums) must be done warpgroup-wide
  // before a scale is written (NOTES.md run 37: racecheck found the race when
  // SplitKAnyRows' barrier there was a warp's).
  __device__ float* scales() const { return reinterpret_cast<float*>(group_sums); }
};

// Issues the cp.async copies of slab `slab`'s 64 fp32 rows of `src` (K or V,
// [tokens, kv_heads, 128]) into w.rows (chunk c of row r at r·512 + 16·(c ^
// (r & 7))); rows past the launch's tokens repeat its last token's (their
// slots are -1: never stored). A whole slab's addresses are one base plus
// steps (the clamped 64-bit products per row were a tenth of the quantize
// phase's instructions: NOTES.md run 32).
__device__ __forceinline__ void StageSlabRows(const EncodePackParams& p, const float* src, int head,
                                              int slab, const SlabWarpgroup& w) {
  const int r0 = w.wt >> 5, c = w.wt & 31;  // rows r0 + 4i, chunk c
  const int token0 = slab * kSlabTokens + r0, last = p.num_tokens - 1;
  const int64_t token_stride = static_cast<int64_t>(p.num_kv_heads) * kWgmmaDim;
  const float* row = src + static_cast<int64_t>(min(token0, last)) * token_stride +
                     static_cast<int64_t>(head) * kWgmmaDim + 4 * c;
  if (slab * kSlabTokens + kSlabTokens - 1 <= last) {  // warpgroup-uniform: the slab is whole
    const float* next = row;
#pragma unroll
    for (int i = 0; i < kSlabTokens / 4; ++i, next += 4 * token_stride) {
      CpAsync16(w.rows + (r0 + 4 * i) * 512 + 16 * (c ^ ((r0 + 4 * i) & 7)), next);
    }
  } else {
#pragma unroll
    for (int i = 0; i < kSlabTokens / 4; ++i) {
      const int r = r0 + 4 * i;
      CpAsync16(w.rows + r * 512 + 16 * (c ^ (r & 7)),
                row + (min(token0 + 4 * i, last) - min(token0, last)) * token_stride);
    }
  }
  CpAsyncCommit();
}

// The thread's 8 values of positions 16m + 2h + {0, 1, 4, 5, .., 13} (pairs
// x[4m .. 4m + 3]) times s (pair q's s[q]) as fp16 hi and lo into chunk 2m + h
// of its row in the A planes.
__device__ __forceinline__ void StoreSplitChunk(const SlabWarpgroup& w, const float2* x, int m,
                                                const float (&s)[4]) {
  uint32_t hi[4], lo[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) SplitHalf2(x[q].x * s[q], x[q].y * s[q], hi[q], lo[q]);
  const int offset = CoreOffset(w.row, 2 * m + w.h);
  *reinterpret_cast<uint4*>(w.rows + offset) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
  *reinterpret_cast<uint4*>(w.rows + WgmmaSmem::kRowPlane + offset) =
      make_uint4(lo[0], lo[1], lo[2], lo[3]);
}
__device__ __forceinline__ void StoreSplitChunk(const SlabWarpgroup& w, const float2* x, int m,
                                                float s) {
  StoreSplitChunk(w, x, m, {s, s, s, s});
}

// z·2^20 of the slab's 64 rows into acc: 24 wgmma steps, the small products
// first. Committed, not waited for.
__device__ __forceinline__ void IssueSlabProducts(float (&acc)[64], const char* rows,
                                                  uint32_t rotation_hi) {
  const uint32_t a_hi = SharedAddress(rows), a_lo = a_hi + WgmmaSmem::kRowPlane;
  const uint32_t b_hi = rotation_hi, b_lo = b_hi + WgmmaSmem::kRotationPlane;
  const auto desc = [](uint32_t address) {
    return WgmmaDescriptor(address, kCoreLeading, kCoreStride);
  };
  WgmmaFence();
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {  // a k-step is two chunks, 256 bytes
    WgmmaM64N128K16(acc, desc(a_lo + 256 * kk), desc(b_hi + 256 * kk), kk > 0);
  }
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    WgmmaM64N128K16(acc, desc(a_hi + 256 * kk), desc(b_lo + 256 * kk), true);
  }
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) {
    WgmmaM64N128K16(acc, desc(a_hi + 256 * kk), desc(b_hi + 256 * kk), true);
  }
  WgmmaCommit();
}

// Whether the slab is a whole page in slot order (all 64 tokens present,
// consecutive slots from a page boundary), in every thread of the warpgroup;
// the barrier also makes the slab's codes and norms visible to the stores.
__device__ __forceinline__ bool SlabIsWholePage(const SlabWarpgroup& w) {
  const int64_t* slot_s = w.slot_s;
  return WarpgroupBarrierAnd(
      w.id, w.wt >= kSlabTokens || (slot_s[0] >= 0 && slot_s[0] % kKernelPageTokens == 0 &&
                                    slot_s[w.wt] == slot_s[0] + w.wt));
}

// The slab's slots into w.slot_s (-1 past the launch's tokens).
__device__ __forceinline__ void LoadSlabSlots(const EncodePackParams& p, int slab,
                                              const SlabWarpgroup& w) {
  if (w.wt < kSlabTokens) {
    const int token = slab * kSlabTokens + w.wt;
    w.slot_s[w.wt] = token < p.num_tokens ? p.slot_mapping[token] : -1;
  }
}

}  // namespace kvplan::kernels::internal

#endif  // KVPLAN_KERNELS_ENCODE_WGMMA_SLAB_CUH_
