// V's half of the wgmma encode (sm_90a, head_dim 128), device code: every
// slab of a CTA's range, one group of 128 coordinates at BITS, the identity
// permutation, dim-major code streams. The machinery it shares with K's half
// is encode_wgmma_slab.cuh's; the kernel is encode_wgmma.cuh's.
#ifndef KVPLAN_KERNELS_ENCODE_V_WGMMA_CUH_
#define KVPLAN_KERNELS_ENCODE_V_WGMMA_CUH_

#include <cstdint>

#include "kvplan/kernels/code_grid.h"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/encode_wgmma_slab.cuh"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels::internal {

// The staged rows into the A planes (x·s·2^10 as fp16 hi and lo); returns the
// fp64 norm of the thread's row. Waits for the copies; the caller synchronises
// the warpgroup before the products read the planes.
__device__ __forceinline__ double SplitVRows(const SlabWarpgroup& w) {
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
  const double sqrt_d = sqrt(static_cast<double>(kWgmmaDim));
  const float s =
      (norm > 0.0 && isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f) * kSplitScale;
  WarpgroupBarrier(w.id);  // every row read before the planes are overwritten
#pragma unroll
  for (int m = 0; m < 8; ++m) StoreSplitChunk(w, x + 4 * m, m, s);
  FenceProxyAsyncShared();  // the planes are read by the async proxy
  return norm;
}

// Codes into w.code_s and n' into w.norm_s from the slab's products: the
// slab kernel's arithmetic (RotateQuantizeRows), fragment j of the
// accumulator being its n-tile j. grid: the code grids (code_grid.h);
// squares: width BITS's c².
template <int BITS>
__device__ __forceinline__ void QuantizeVSlab(const SlabWarpgroup& w, const float (&acc)[64],
                                              const double (&row_norm)[2], const CodeGrid& grid,
                                              const double* squares) {
  const CodeGridWidth width = grid.widths[BITS - 1];
  int code_row[2];  // (row, coordinate t) in the dim-major stream, swizzled
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    code_row[r] = CodeByte(w.t * kSlabTokens + w.q_row + 8 * r, /*dim_major=*/true);
  }
  double code_sum[2] = {0.0, 0.0};
#pragma unroll
  for (int j = 0; j < 16; ++j) {  // output coordinates 8j + t, 8j + t + 4
    const float z[4] = {acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]};
    int code[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) code[e] = GridCode(z[e], width, grid.cells);
#pragma unroll
    for (int e = 0; e < 4; ++e) {  // row q_row + 8 (e / 2), coordinate 8j + t + 4 (e % 2)
      const int r = e >> 1, step = 8 * j + 4 * (e & 1);
      w.code_s[code_row[r] + step * kSlabTokens] = static_cast<uint8_t>(code[e]);
      code_sum[r] = __dadd_rn(code_sum[r], squares[code[e]]);
    }
  }
  const double total0 = LaneSumTotal(code_sum[0]), total1 = LaneSumTotal(code_sum[1]);
  if (w.t < 2) {  // lane t < 2 of the quad: row q_row + 8t
    w.norm_s[w.q_row + 8 * w.t] =
        CorrectedNorm(w.t == 0 ? row_norm[0] : row_norm[1], sqrt(static_cast<double>(kWgmmaDim)),
                      w.t == 0 ? total0 : total1);
  }
}

// V of slabs first, first + kWgmmaGroups, .. (< end) of one KV head by
// warpgroup w; the CTA's shared memory holds the code tables (squares and
// code grids of every width: StageWgmmaCodeTables). Stages V's
// rotation (whole CTA) first.
template <int BITS>
__device__ __forceinline__ void EncodeVSlabs(const EncodePackParams& p, int head, int first,
                                             int end, char* smem, const SlabWarpgroup& w, int tid) {
  using S = WgmmaSmem;
  const PackedHeadDesc& desc = p.heads[head];
  const auto& fragment = *reinterpret_cast<const FragmentHeadGeometry*>(smem + S::kFragment);
  // The first slab's rows on their way while R is staged.
  if (first < end) StageSlabRows(p, p.v, head, first, w);
  const float* rt = p.rotations + desc.v_rotation_t;
  StageWgmmaRotation(
      smem + S::kRotation, [&](int j, int i) { return __ldg(rt + j * kWgmmaDim + i); }, tid);
  FenceProxyAsyncShared();  // R's planes are read by the async proxy
  __syncthreads();
  const uint32_t rotation_hi = SharedAddress(smem + S::kRotation);
  const CodeGrid& grid = *reinterpret_cast<const CodeGrid*>(smem + S::kGrid);
  const double* squares =
      reinterpret_cast<const double*>(smem + S::kSquares) + CentroidTableOffset(BITS);
  const EncodeGroup grp = GroupToEncode(desc, /*is_v=*/true, BITS, kWgmmaDim, 0);
  for (int slab = first; slab < end; slab += kWgmmaGroups) {
    const double norm = SplitVRows(w);  // its first barrier: the last slab's stores are done
    LoadSlabSlots(p, slab, w);
    WarpgroupBarrier(w.id);  // planes, slots visible
    float acc[64];
    IssueSlabProducts(acc, w.rows, rotation_hi);
    const double row_norm[2] = {__shfl_sync(0xffffffffu, norm, w.norm_lane),
                                __shfl_sync(0xffffffffu, norm, w.norm_lane | 16)};
    WgmmaWait(acc);
    WarpgroupBarrier(w.id);  // the whole warpgroup's products have read the planes
    if (slab + kWgmmaGroups < end) StageSlabRows(p, p.v, head, slab + kWgmmaGroups, w);
    QuantizeVSlab<BITS>(w, acc, row_norm, grid, squares);
    const bool whole_page = SlabIsWholePage(w);
    if (p.fragment != nullptr && whole_page) {
      StoreFragmentVPage<kWgmmaDim, BITS>(p, head, fragment, w.code_s, w.norm_s, w.slot_s[0], w.wt);
    } else {
      StoreGroup(p, head, /*is_v=*/true, 0, grp, w.code_s, w.norm_s, w.slot_s, whole_page, w.wt);
    }
  }
}

}  // namespace kvplan::kernels::internal

#endif  // KVPLAN_KERNELS_ENCODE_V_WGMMA_CUH_
