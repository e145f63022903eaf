// Encode + pack of V on wgmma (sm_90a, head_dim 128), device code: the V half
// of a long encode launch (LaunchEncodePack routes it here when
// EncodePackParams::wgmma is set; K stays on encode_pack.cuh's slab kernel).
//
// The slab kernel rotates with mma.sync, each warp holding its rows' split A
// fragments in registers, so an SM keeps 16 warps and the kernel waits on
// latency (NOTES.md run 30). Here a warpgroup (128 threads) encodes a 64-token
// slab with both operands in shared memory (the design probe of NOTES run 31):
//   - stage: the slab's fp32 rows arrive by cp.async, each warp instruction
//     one whole 512-byte row, 16-byte chunks XOR-swizzled by row; they are
//     issued while the previous slab quantizes, into the warpgroup's A planes,
//     which that slab's products have finished reading;
//   - split: a thread per (row, half h) reads its 64 coordinates (4c + 2h,
//     4c + 2h + 1), sums the CPU's lanes 2h and 2h + 1 of ‖x‖² in order
//     (fp64, as encode_pack.cuh), and writes x·s·2^10 as fp16 hi and lo over
//     the rows, in a K order that makes each thread's 8 values one 16-byte
//     store (R's columns are staged in the same order);
//   - rotate: 24 m64n128k16 wgmma into one fp32 accumulator, the small
//     products first (x_lo·R_hi, x_hi·R_lo, then x_hi·R_hi), so the large sum
//     rounds as the slab kernel's acc0 + (acc1 + acc2): the same error bound
//     (tests/kernels/encode_pack_test.cc), codes equal to the CPU's but where
//     z lies within it of a boundary;
//   - quantize and store: the slab kernel's search, c² sums, code buffer and
//     stores (whole pages of either grammar, or code by code with atomics).
// A CTA stages its head's R once (hi and lo, 64 KB) and runs kVWgmmaGroups
// warpgroups, each on every kVWgmmaGroups-th slab of the CTA's range; one CTA
// per SM (~189 KB of shared memory). Grid (CTAs per head, num_kv_heads).
#ifndef KVPLAN_KERNELS_ENCODE_V_WGMMA_CUH_
#define KVPLAN_KERNELS_ENCODE_V_WGMMA_CUH_

#include <cuda_fp16.h>

#include <cstdint>

#include "kvplan/kernels/device_utils.cuh"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/params.h"
#include "kvplan/kernels/wgmma.cuh"

namespace kvplan::kernels {

namespace internal {

inline constexpr int kVWgmmaDim = 128;   // the only head_dim of this kernel
inline constexpr int kVWgmmaGroups = 3;  // warpgroups per CTA (168 registers each)
inline constexpr int kVWgmmaThreads = 128 * kVWgmmaGroups;
static_assert(kSlabThreads == 128 && kSlabTokens == 64, "a warpgroup per 64-token slab");

// Shared memory of one CTA, in bytes: R's hi and lo planes (B), then per
// warpgroup its A planes (hi, lo; between a slab's products and the next
// slab's split they hold that slab's staged fp32 rows), its code buffer
// (encode_pack.cuh's CodeByte order), n' and slots; then the codebook's c²
// and scaled boundaries at v_bits.
struct VWgmmaSmem {
  static constexpr int kRotationPlane = kVWgmmaDim * kVWgmmaDim * 2;
  static constexpr int kRowPlane = kSlabTokens * kVWgmmaDim * 2;  // = 64 fp32 rows
  static constexpr int kRotation = 0;
  static constexpr int kRows = kRotation + 2 * kRotationPlane;
  static constexpr int kCodes = kRows + kVWgmmaGroups * 2 * kRowPlane;
  static constexpr int kNorms = kCodes + kVWgmmaGroups * kSlabTokens * kVWgmmaDim;
  static constexpr int kSlots = kNorms + kVWgmmaGroups * 2 * kSlabTokens;
  static constexpr int kSquares = kSlots + kVWgmmaGroups * 8 * kSlabTokens;
  static constexpr int kBoundaries = kSquares + 8 * 256;
  static constexpr int kBytes = kBoundaries + 4 * 256;
};
static_assert(VWgmmaSmem::kBytes + 1024 <= 228 * 1024, "one CTA per SM");
static_assert(2 * VWgmmaSmem::kRowPlane == kSlabTokens * kVWgmmaDim * 4,
              "a slab's fp32 rows fill its A planes");

// Byte offset of (row, 16-byte K chunk kc) in a plane of the no-swizzle
// K-major layout (wgmma.cuh): K-adjacent core matrices 128 bytes apart, 8-row
// groups 2048.
inline constexpr int kVCoreLeading = 128, kVCoreStride = 2048;
__host__ __device__ constexpr int VCoreOffset(int row, int kc) {
  return ((row >> 3) * (kVWgmmaDim / 8) + kc) * 128 + (row & 7) * 16;
}
// The input coordinate at K position k: chunk kc = 2m + h holds coordinates
// 16m + 2h + {0, 1, 4, 5, 8, 9, 12, 13}, the values a split thread of half h
// owns for its pairs 4m .. 4m + 3. Each 16-wide k-step holds 16m .. 16m + 15.
__host__ __device__ constexpr int VKCoordinate(int k) {
  const int kc = k >> 3, e = k & 7;
  return 16 * (kc >> 1) + 4 * (e >> 1) + 2 * (kc & 1) + (e & 1);
}

// Barrier `id` (1 .. kVWgmmaGroups) of one warpgroup: the id in a register
// (device_utils.cuh), so that all warpgroups run one copy of the unrolled body
// (four copies overflowed the instruction cache: NOTES.md run 31).
__device__ __forceinline__ void WarpgroupBarrier(int id) { NamedBarrier(id, 128); }
__device__ __forceinline__ bool WarpgroupBarrierAnd(int id, bool pred) {
  return NamedBarrierAnd(id, 128, pred);
}

// Splits V's Rᵀ (the plan's, rt[j·128 + i] = R[i][j]) times kSplitScale into
// the fp16 hi and lo B planes: row n holds output coordinate 8(n/8) +
// NCoordinate(n % 8) (so that a quad's thread t accumulates coordinates ≡ t
// mod 4 in increasing order, the CPU's c² lanes), K position k input
// coordinate VKCoordinate(k). Whole CTA.
__device__ __forceinline__ void StageVRotation(char* rotation_s, const float* rt, int tid) {
  constexpr int kChunks = kVWgmmaDim / 8;
  for (int q = tid; q < kVWgmmaDim * kChunks; q += kVWgmmaThreads) {
    const int n = q / kChunks, kc = q % kChunks;
    const int i = 8 * (n >> 3) + NCoordinate(n & 7);
    uint32_t hi[4], lo[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      SplitHalf2(__ldg(rt + VKCoordinate(8 * kc + 2 * e) * kVWgmmaDim + i) * kSplitScale,
                 __ldg(rt + VKCoordinate(8 * kc + 2 * e + 1) * kVWgmmaDim + i) * kSplitScale, hi[e],
                 lo[e]);
    }
    char* chunk = rotation_s + VCoreOffset(n, kc);
    *reinterpret_cast<uint4*>(chunk) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    *reinterpret_cast<uint4*>(chunk + VWgmmaSmem::kRotationPlane) =
        make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
}

// One warpgroup's buffers and each thread's roles in them.
struct VWarpgroup {
  int id;            // barrier id
  int wt, lane;      // thread index in the warpgroup, lane
  char* rows;        // A planes (hi, then lo), or the slab's staged fp32 rows
  uint8_t* code_s;   // the slab's codes (CodeByte order, dim-major)
  uint16_t* norm_s;  // the slab's n'
  int64_t* slot_s;   // the slab's slots
  // Split phase: row `row`, half h. Lanes 8q .. 8q + 7 hold rows 0-3 of one
  // 8-row group with one h and rows 4-7 with the other, so their 16-byte A
  // stores hit distinct banks; the partner half is lane ^ 12.
  int row, h;
  // Quantize phase: rows q_row and q_row + 8, quad lane t; lanes norm_lane
  // and norm_lane | 16 split those rows (with h = 0).
  int q_row, t, norm_lane;

  __device__ VWarpgroup(char* smem, int group) {
    using S = VWgmmaSmem;
    id = group + 1;
    wt = threadIdx.x & 127;
    lane = wt & 31;
    rows = smem + S::kRows + 2 * S::kRowPlane * group;
    code_s = reinterpret_cast<uint8_t*>(smem + S::kCodes) + kSlabTokens * kVWgmmaDim * group;
    norm_s = reinterpret_cast<uint16_t*>(smem + S::kNorms) + kSlabTokens * group;
    slot_s = reinterpret_cast<int64_t*>(smem + S::kSlots) + kSlabTokens * group;
    const int warp = wt >> 5;
    h = (lane >> 2) & 1;
    row = 16 * warp + 8 * (lane >> 4) + (lane & 3) + 4 * (h ^ ((lane >> 3) & 1));
    q_row = 16 * warp + (lane >> 2);
    t = lane & 3;
    const int r = lane >> 2;
    norm_lane = (r & 3) | ((r >> 2) & 1) << 3;
  }
};

// Issues the cp.async copies of slab `slab`'s 64 fp32 rows into w.rows
// (chunk c of row r at r·512 + 16·(c ^ (r & 7))); rows past the launch's
// tokens repeat its last token's (their slots are -1: never stored).
__device__ __forceinline__ void StageVRows(const EncodePackParams& p, int head, int slab,
                                           const VWarpgroup& w) {
  const int r0 = w.wt >> 5, c = w.wt & 31;  // rows r0 + 4i, chunk c
  const int token0 = slab * kSlabTokens + r0, last = p.num_tokens - 1;
  const float* src = p.v + static_cast<int64_t>(head) * kVWgmmaDim + 4 * c;
  const int64_t token_stride = static_cast<int64_t>(p.num_kv_heads) * kVWgmmaDim;
#pragma unroll
  for (int i = 0; i < kSlabTokens / 4; ++i) {
    const int r = r0 + 4 * i;
    CpAsync16(w.rows + r * 512 + 16 * (c ^ (r & 7)),
              src + min(token0 + 4 * i, last) * token_stride);
  }
  CpAsyncCommit();
}

// The staged rows into the A planes (x·s·2^10 as fp16 hi and lo); returns the
// fp64 norm of the thread's row. Waits for the copies; the caller synchronises
// the warpgroup before the products read the planes.
__device__ __forceinline__ double SplitVRows(const VWarpgroup& w) {
  CpAsyncWait<0>();
  WarpgroupBarrier(w.id);
  float2 x[32];
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    x[c] =
        *reinterpret_cast<const float2*>(w.rows + w.row * 512 + 16 * (c ^ (w.row & 7)) + 8 * w.h);
  }
  double lane_a = 0.0, lane_b = 0.0;  // the CPU's lanes 2h and 2h + 1, in order
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    lane_a = AddSquare(lane_a, x[c].x);
    lane_b = AddSquare(lane_b, x[c].y);
  }
  // (s0 + s1) + (s2 + s3): fp64 addition commutes exactly.
  const double pair = __dadd_rn(lane_a, lane_b);
  const double norm = sqrt(__dadd_rn(pair, __shfl_xor_sync(0xffffffffu, pair, 12)));
  const double sqrt_d = sqrt(static_cast<double>(kVWgmmaDim));
  const float s =
      (norm > 0.0 && isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f) * kSplitScale;
  WarpgroupBarrier(w.id);  // every row read before the planes are overwritten
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    uint32_t hi[4], lo[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) SplitHalf2(x[4 * m + q].x * s, x[4 * m + q].y * s, hi[q], lo[q]);
    const int offset = VCoreOffset(w.row, 2 * m + w.h);
    *reinterpret_cast<uint4*>(w.rows + offset) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
    *reinterpret_cast<uint4*>(w.rows + VWgmmaSmem::kRowPlane + offset) =
        make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
  FenceProxyAsyncShared();  // the planes are read by the async proxy
  return norm;
}

// z·2^20 of the slab's 64 rows into acc: 24 wgmma steps, the small products
// first. Committed, not waited for.
__device__ __forceinline__ void IssueVProducts(float (&acc)[64], const char* rows,
                                               uint32_t rotation_hi) {
  const uint32_t a_hi = SharedAddress(rows), a_lo = a_hi + VWgmmaSmem::kRowPlane;
  const uint32_t b_hi = rotation_hi, b_lo = b_hi + VWgmmaSmem::kRotationPlane;
  const auto desc = [](uint32_t address) {
    return WgmmaDescriptor(address, kVCoreLeading, kVCoreStride);
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

// Codes into w.code_s and n' into w.norm_s from the slab's products: the
// slab kernel's arithmetic (RotateQuantizeRows), fragment j of the
// accumulator being its n-tile j.
template <int BITS>
__device__ __forceinline__ void QuantizeVSlab(const VWarpgroup& w, const float (&acc)[64],
                                              const double (&row_norm)[2], const float* boundaries,
                                              const double* squares) {
  int code_row[2];  // (row, coordinate t) in the dim-major stream, swizzled
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    code_row[r] = CodeByte(w.t * kSlabTokens + w.q_row + 8 * r, /*dim_major=*/true);
  }
  double code_sum[2] = {0.0, 0.0};
#pragma unroll
  for (int j = 0; j < 16; ++j) {  // output coordinates 8j + t, 8j + t + 4
    const float z[4] = {acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]};
    int offset[4];  // 4·code
    CountBelow4<BITS>(z, boundaries, offset);
#pragma unroll
    for (int e = 0; e < 4; ++e) {  // row q_row + 8 (e / 2), coordinate 8j + t + 4 (e % 2)
      const int r = e >> 1, step = 8 * j + 4 * (e & 1), code = offset[e] >> 2;
      w.code_s[code_row[r] + step * kSlabTokens] = static_cast<uint8_t>(code);
      code_sum[r] = __dadd_rn(code_sum[r], squares[code]);
    }
  }
  const double total0 = LaneSumTotal(code_sum[0]), total1 = LaneSumTotal(code_sum[1]);
  if (w.t < 2) {  // lane t < 2 of the quad: row q_row + 8t
    w.norm_s[w.q_row + 8 * w.t] =
        CorrectedNorm(w.t == 0 ? row_norm[0] : row_norm[1], sqrt(static_cast<double>(kVWgmmaDim)),
                      w.t == 0 ? total0 : total1);
  }
}

}  // namespace internal

// V of every token of p for one KV head (blockIdx.y); CTA x takes slabs
// [x·per_cta, (x + 1)·per_cta). kVWgmmaThreads threads, VWgmmaSmem::kBytes
// of dynamic shared memory; sm_90a only (wgmma.cuh).
template <int BITS>
__global__ void __launch_bounds__(internal::kVWgmmaThreads, 1)
    EncodeVWgmmaKernel(const __grid_constant__ EncodePackParams p, int slabs_per_cta) {
  using namespace internal;
  using S = VWgmmaSmem;
  // Its own name: the slab kernel's extern array, of another type, shares
  // encode_pack.cu's translation unit.
  extern __shared__ __align__(128) char v_wgmma_smem[];
  char* smem = v_wgmma_smem;
  const int head = blockIdx.y, tid = threadIdx.x;
  const PackedHeadDesc& desc = p.heads[head];
  const int slabs = (p.num_tokens + kSlabTokens - 1) / kSlabTokens;
  const int first = blockIdx.x * slabs_per_cta, end = min(slabs, first + slabs_per_cta);
  const VWarpgroup w(smem, tid >> 7);
  const int group_first = first + (tid >> 7);
  // The first slab's rows on their way while R and the tables are staged.
  if (group_first < end) StageVRows(p, head, group_first, w);
  StageVRotation(smem + S::kRotation, p.rotations + desc.v_rotation_t, tid);
  double* squares = reinterpret_cast<double*>(smem + S::kSquares);
  float* boundaries = reinterpret_cast<float*>(smem + S::kBoundaries);
  for (int k = tid; k < (1 << BITS); k += kVWgmmaThreads) {
    squares[k] = Square(p.tables->centroids[BITS - 1][k]);
    if (k + 1 < (1 << BITS)) boundaries[k] = p.tables->boundaries[BITS - 1][k] * kSumScale;
  }
  FenceProxyAsyncShared();  // R's planes are read by the async proxy
  __syncthreads();
  const uint32_t rotation_hi = SharedAddress(smem + S::kRotation);
  const EncodeGroup grp = GroupToEncode(desc, /*is_v=*/true, BITS, kVWgmmaDim, 0);
  for (int slab = group_first; slab < end; slab += kVWgmmaGroups) {
    const double norm = SplitVRows(w);  // its first barrier: the last slab's stores are done
    if (w.wt < kSlabTokens) {
      const int token = slab * kSlabTokens + w.wt;
      w.slot_s[w.wt] = token < p.num_tokens ? p.slot_mapping[token] : -1;
    }
    WarpgroupBarrier(w.id);  // planes, slots visible
    float acc[64];
    IssueVProducts(acc, w.rows, rotation_hi);
    const double row_norm[2] = {__shfl_sync(0xffffffffu, norm, w.norm_lane),
                                __shfl_sync(0xffffffffu, norm, w.norm_lane | 16)};
    WgmmaWait(acc);
    WarpgroupBarrier(w.id);  // the whole warpgroup's products have read the planes
    if (slab + kVWgmmaGroups < end) StageVRows(p, head, slab + kVWgmmaGroups, w);
    QuantizeVSlab<BITS>(w, acc, row_norm, boundaries, squares);
    // The slab is a whole page in slot order: all 64 tokens present,
    // consecutive slots from a page boundary. The barrier also makes the
    // codes and norms visible to the stores.
    const int64_t* slot_s = w.slot_s;
    const bool whole_page = WarpgroupBarrierAnd(
        w.id, w.wt >= kSlabTokens || (slot_s[0] >= 0 && slot_s[0] % kKernelPageTokens == 0 &&
                                      slot_s[w.wt] == slot_s[0] + w.wt));
    if (p.fragment != nullptr && whole_page) {
      StoreFragmentPageRuns<kVWgmmaDim>(p, head, /*is_v=*/true, desc, 0, 1, w.code_s, slot_s[0],
                                        w.wt);
    }
    StoreGroup(p, head, /*is_v=*/true, 0, grp, w.code_s, w.norm_s, slot_s, whole_page, w.wt);
  }
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_V_WGMMA_CUH_
