// K's half of the wgmma encode (sm_90a, head_dim 128), device code: the
// head's groups at their own widths, gathered through its permutation,
// token-major code streams. The machinery it shares with V's half is
// encode_wgmma_slab.cuh's; the kernel is encode_wgmma.cuh's.
//
// Two paths. Where every K group spans whole 16-position blocks (16-aligned
// plans: EncodePackParams::k_groups_whole), a block's scale, width and code
// stream are warp-uniform (SlabBlocks), and the norms' and c² sums' lanes
// finish at block ends. Other layouts (greedy plans: groups of RoPE pairs, so
// even sizes and offsets) look groups up per position pair (PairGroups): a
// split pair (positions 4c + 2h, +1) and a quantized value belong to one group
// each; the split's lane sums go to shared memory when its group changes, and
// the c² sums are a pass of their own over the slab's codes, a thread per
// (row, lane pair) in the CPU's order. Both multiply by the block-diagonal rotation
// in one product, and both find each code with one load from its width's code
// grid (code_grid.h; the binary searches these replaced were the largest part
// of K's quantize: NOTES.md run 38). The fp64 square roots and divisions of
// a group's n, s and n' run in short loops over a thread's (group, row) pairs
// between the phases, not at each group's end inside the unrolled loops (there
// they made the kernel thousands of instructions longer, instruction fetch its
// main stall: NOTES.md run 32).
#ifndef KVPLAN_KERNELS_ENCODE_K_WGMMA_CUH_
#define KVPLAN_KERNELS_ENCODE_K_WGMMA_CUH_

#include <cstdint>
#include <type_traits>

#include "kvplan/kernels/code_grid.h"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/encode_wgmma_slab.cuh"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels::internal {

// The head's groups per 16-position block m (0..7): group(m) in 4 bits each,
// and which blocks start and end a group.
struct SlabBlocks {
  uint32_t groups = 0, starts = 0, ends = 0;

  __device__ explicit SlabBlocks(const PackedHeadDesc& desc) {
    for (int g = 0; g < desc.num_groups; ++g) {
      const int first = desc.offset[g] / 16, last = (desc.offset[g] + desc.size[g]) / 16 - 1;
      for (int m = first; m <= last; ++m) groups |= static_cast<uint32_t>(g) << 4 * m;
      starts |= 1u << first;
      ends |= 1u << last;
    }
  }
  __device__ int Group(int m) const { return groups >> 4 * m & 0xf; }
  __device__ bool Starts(int m) const { return starts >> m & 1; }
  __device__ bool Ends(int m) const { return ends >> m & 1; }
  __device__ int OfPosition(int position) const { return Group(position >> 4); }
};

// The group of each position pair (2q, 2q + 1) of any layout, from a table in
// shared memory (StagePairGroups).
struct PairGroups {
  const uint8_t* table;
  __device__ int OfPosition(int position) const { return table[position >> 1]; }
};

// PairGroups' table (kWgmmaDim / 2 bytes). Whole CTA; the caller synchronises.
__device__ __forceinline__ void StagePairGroups(uint8_t* table, const PackedHeadDesc& desc,
                                                int tid) {
  for (int q = tid; q < kWgmmaDim / 2; q += kWgmmaThreads) {
    int g = 0;
    while (g + 1 < desc.num_groups &&
           !(desc.offset[g] <= 2 * q && 2 * q < desc.offset[g] + desc.size[g])) {
      ++g;
    }
    table[q] = static_cast<uint8_t>(g);
  }
}

// Rᵀ of K's layout at (input position j, output position i): group g's where
// both lie in g, else 0 (the block diagonal). Groups: SlabBlocks or PairGroups.
template <typename Groups>
struct KRotation {
  const float* rotations;
  const PackedHeadDesc* desc;
  Groups groups;
  __device__ float operator()(int j, int i) const {
    const int g = groups.OfPosition(j);
    if (groups.OfPosition(i) != g) return 0.0f;
    const int o = desc->offset[g], d = desc->size[g];
    return __ldg(rotations + desc->k_rotation_t[g] + (j - o) * d + (i - o));
  }
};

// Pair table of the gather: entry 2c + h holds the byte offsets (4·dim) in an
// unswizzled fp32 row of positions 4c + 2h (low half) and 4c + 2h + 1 (high).
// Whole CTA.
__device__ __forceinline__ void StagePermutationPairs(uint32_t* pairs, const PackedHeadDesc& desc,
                                                      int tid) {
  for (int q = tid; q < kWgmmaDim / 2; q += kWgmmaThreads) {
    pairs[q] = 4u * desc.permutation[2 * q] | (4u * desc.permutation[2 * q + 1]) << 16;
  }
}

// The staged rows into the A planes, each block of positions scaled by its
// group's s; the groups' norms n into w.row_norms. Waits for the copies; the
// caller synchronises the warpgroup before the products read the planes.
// The thread's split pairs c = 0..31 (positions 4c + 2h, 4c + 2h + 1) of its
// staged row, gathered through the permutation pairs. Waits for the copies.
__device__ __forceinline__ void GatherKPairs(const SlabWarpgroup& w, const uint32_t* pairs,
                                             float2 (&x)[32]) {
  CpAsyncWait<0>();
  WarpgroupBarrier(w.id);
  const char* row = w.rows + w.row * 512;
  const uint32_t swizzle = 16 * (w.row & 7);  // StageSlabRows' chunk XOR, in bytes
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    const uint32_t pair = pairs[2 * c + w.h];
    x[c].x = *reinterpret_cast<const float*>(row + ((pair & 0xffffu) ^ swizzle));
    x[c].y = *reinterpret_cast<const float*>(row + ((pair >> 16) ^ swizzle));
  }
}

__device__ __forceinline__ void SplitKRows(const SlabWarpgroup& w, const SlabBlocks& blocks,
                                           const uint32_t* pairs, const PackedHeadDesc& desc) {
  float2 x[32];
  GatherKPairs(w, pairs, x);
  // Per group, the CPU's lanes 2h and 2h + 1 in order (a group's position p
  // is in lane p mod 4: groups start on multiples of 16).
  double lane_a = 0.0, lane_b = 0.0;
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    if (blocks.Starts(m)) lane_a = lane_b = 0.0;
#pragma unroll
    for (int c = 4 * m; c < 4 * m + 4; ++c) {
      lane_a = AddSquare(lane_a, x[c].x);
      lane_b = AddSquare(lane_b, x[c].y);
    }
    if (blocks.Ends(m)) {  // warp-uniform: both halves shuffle
      const double pair = __dadd_rn(lane_a, lane_b);
      const double total = __dadd_rn(pair, __shfl_xor_sync(0xffffffffu, pair, 12));
      const int g = blocks.Group(m);
      if ((g & 1) == w.h) w.row_norms[g * kSlabTokens + w.row] = total;  // its own, below
    }
  }
  // n and s of the row's groups g ≡ h (mod 2): the partner half takes the
  // others, and the barrier shows each its partner's.
  float* scales = w.scales();
  for (int g = w.h; g < desc.num_groups; g += 2) {
    const int i = g * kSlabTokens + w.row;
    const double norm = sqrt(w.row_norms[i]);
    const double sqrt_d = sqrt(static_cast<double>(desc.size[g]));
    w.row_norms[i] = norm;
    scales[i] =
        (norm > 0.0 && isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f) * kSplitScale;
  }
  WarpgroupBarrier(w.id);  // the scales visible, every row read before the planes are overwritten
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    StoreSplitChunk(w, x + 4 * m, m, scales[blocks.Group(m) * kSlabTokens + w.row]);
  }
  FenceProxyAsyncShared();  // the planes are read by the async proxy
}

// SplitKRows for any layout (PairGroups). A pair's lanes are the CPU's 2k and
// 2k + 1 of its group for one k (groups have even offsets), so the thread sums
// its two lanes of each group it meets, in order, and leaves their sum in
// shared memory when the group changes: half 0's in w.row_norms, half 1's in
// w.group_sums; the partner's half completes (L0 + L1) + (L2 + L3), which
// commutes.
__device__ __forceinline__ void SplitKAnyRows(const SlabWarpgroup& w, const PairGroups& groups,
                                              const uint32_t* pairs, const PackedHeadDesc& desc) {
  float2 x[32];
  GatherKPairs(w, pairs, x);
  double* half_sums = w.h == 0 ? w.row_norms : w.group_sums;
  for (int g = 0; g < desc.num_groups; ++g) half_sums[g * kSlabTokens + w.row] = 0.0;
  int group = groups.OfPosition(2 * w.h);
  double lane_a = 0.0, lane_b = 0.0;
#pragma unroll
  for (int c = 0; c < 32; ++c) {
    const int g = groups.OfPosition(4 * c + 2 * w.h);
    if (g != group) {
      half_sums[group * kSlabTokens + w.row] = __dadd_rn(lane_a, lane_b);
      lane_a = lane_b = 0.0;
      group = g;
    }
    lane_a = AddSquare(lane_a, x[c].x);
    lane_b = AddSquare(lane_b, x[c].y);
  }
  half_sums[group * kSlabTokens + w.row] = __dadd_rn(lane_a, lane_b);
  WarpgroupBarrier(w.id);  // both halves' sums visible
  // n and s of the row's groups g ≡ h (mod 2), as SplitKRows.
  float own_scales[kMaxKGroups / 2];
#pragma unroll
  for (int k = 0; k < kMaxKGroups / 2; ++k) {
    const int g = w.h + 2 * k, i = g * kSlabTokens + w.row;
    if (g < desc.num_groups) {
      const double norm = sqrt(__dadd_rn(w.row_norms[i], w.group_sums[i]));
      const double sqrt_d = sqrt(static_cast<double>(desc.size[g]));
      w.row_norms[i] = norm;
      own_scales[k] =
          (norm > 0.0 && isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f) * kSplitScale;
    }
  }
  WarpgroupBarrier(w.id);  // every sum read before the scales overwrite group_sums
  float* scales = w.scales();
#pragma unroll
  for (int k = 0; k < kMaxKGroups / 2; ++k) {
    const int g = w.h + 2 * k;
    if (g < desc.num_groups) scales[g * kSlabTokens + w.row] = own_scales[k];
  }
  WarpgroupBarrier(w.id);  // the scales visible, every row read before the planes are overwritten
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    float s[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      s[q] = scales[groups.OfPosition(16 * m + 4 * q + 2 * w.h) * kSlabTokens + w.row];
    }
    StoreSplitChunk(w, x + 4 * m, m, s);
  }
  FenceProxyAsyncShared();  // the planes are read by the async proxy
}

// Codes into w.code_s from the slab's products and each group's c² totals
// into w.group_sums; then CorrectKNorms. Fragment j
// of the accumulator holds output positions 8j + t, 8j + t + 4 (block j / 2).
__device__ __forceinline__ void QuantizeKSlab(const SlabWarpgroup& w, const float (&acc)[64],
                                              const SlabBlocks& blocks, const PackedHeadDesc& desc,
                                              const CodeGrid& grid, const double* squares) {
  double code_sum[2] = {0.0, 0.0};
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    const int g = blocks.Group(m), bits = desc.bits[g], d = desc.size[g], o = desc.offset[g];
    const CodeGridWidth width = grid.widths[bits - 1];
    const double* square = squares + CentroidTableOffset(bits);
    // Fragments 2m and 2m + 1: positions 16m + t + 4e' (e' = 0..3), rows
    // q_row + 8r. Row r's 16 bytes of the block start at a multiple of 16 of
    // the token-major stream (o and d are multiples of 16), so its four bytes
    // share CodeByte's swizzle: they lie at CodeByte(first) ^ 4e', i.e. +0 and
    // +4 from pair_byte[r][0] = CodeByte(first) and pair_byte[r][1] = that ^ 8.
    int pair_byte[2][2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int first = kSlabTokens * o + (w.q_row + 8 * r) * d + (16 * m - o) + w.t;
      pair_byte[r][0] = CodeByte(first, /*dim_major=*/false);
      pair_byte[r][1] = pair_byte[r][0] ^ 8;
    }
    if (blocks.Starts(m)) code_sum[0] = code_sum[1] = 0.0;
    int code[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) code[e] = GridCode(acc[8 * m + e], width, grid.cells);
#pragma unroll
    for (int e = 0; e < 8; ++e) {  // row q_row + 8r, position 16m + 8 (e / 4) + t + 4 (e % 2)
      const int r = (e >> 1) & 1;
      w.code_s[pair_byte[r][e >> 2] + 4 * (e & 1)] = static_cast<uint8_t>(code[e]);
      code_sum[r] = __dadd_rn(code_sum[r], square[code[e]]);
    }
    if (blocks.Ends(m)) {  // warp-uniform: every lane of the quads shuffles
      const double total0 = LaneSumTotal(code_sum[0]), total1 = LaneSumTotal(code_sum[1]);
      if (w.t < 2) w.group_sums[g * kSlabTokens + w.q_row + 8 * w.t] = w.t == 0 ? total0 : total1;
    }
  }
}

// QuantizeKSlab for any layout (PairGroups): a thread's positions 8j + t and
// 8j + t + 4 each have their group's width and stream; codes only (the c²
// totals: SumKCodeSquares).
__device__ __forceinline__ void QuantizeKAnySlab(const SlabWarpgroup& w, const float (&acc)[64],
                                                 const PairGroups& groups,
                                                 const PackedHeadDesc& desc, const CodeGrid& grid) {
#pragma unroll
  for (int j = 0; j < 16; ++j) {
#pragma unroll
    for (int u = 0; u < 2; ++u) {  // position 8j + t + 4u of rows q_row, q_row + 8
      const int position = 8 * j + w.t + 4 * u;
      const int g = groups.OfPosition(position);
      const int d = desc.size[g], o = desc.offset[g];
      const CodeGridWidth& width = grid.widths[desc.bits[g] - 1];
      const int code[2] = {GridCode(acc[4 * j + u], width, grid.cells),
                           GridCode(acc[4 * j + 2 + u], width, grid.cells)};
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int byte = kSlabTokens * o + (w.q_row + 8 * r) * d + (position - o);
        w.code_s[CodeByte(byte, /*dim_major=*/false)] = static_cast<uint8_t>(code[r]);
      }
    }
  }
}

// Each group's c² total of every row into w.group_sums, from the slab's codes,
// in the CPU's order: lane t of a group sums its positions o + t + 4i in
// order, and the lanes add as (s0 + s1) + (s2 + s3). Thread `lane` of warp k
// takes row 16k + lane / 2 and lanes 2(lane & 1), 2(lane & 1) + 1, whose codes
// are adjacent bytes (groups have even offsets and sizes): one 2-byte load per
// two codes, and one shuffle per group joins the lane pairs. The codes are
// the warp's own (QuantizeKAnySlab's rows q_row, q_row + 8 of the same warp).
__device__ __forceinline__ void SumKCodeSquares(const SlabWarpgroup& w, const PackedHeadDesc& desc,
                                                const double* squares) {
  __syncwarp();
  const int row = 16 * (w.wt >> 5) + (w.lane >> 1), lane0 = 2 * (w.lane & 1);
  for (int g = 0; g < desc.num_groups; ++g) {  // warp-uniform: every lane shuffles
    const int bits = desc.bits[g], d = desc.size[g], o = desc.offset[g];
    const double* square = squares + CentroidTableOffset(bits);
    const int first = kSlabTokens * o + row * d + lane0;  // an even byte
    double lane_a = 0.0, lane_b = 0.0;
#pragma unroll 4
    for (int i = 0; i < d - lane0; i += 4) {
      const uint32_t codes =
          *reinterpret_cast<const uint16_t*>(w.code_s + CodeByte(first + i, /*dim_major=*/false));
      lane_a = __dadd_rn(lane_a, square[codes & 0xff]);
      lane_b = __dadd_rn(lane_b, square[codes >> 8]);
    }
    const double pair = __dadd_rn(lane_a, lane_b);
    const double total = __dadd_rn(pair, __shfl_xor_sync(0xffffffffu, pair, 1));
    if (lane0 == 0) w.group_sums[g * kSlabTokens + row] = total;
  }
}

// n' of the warp's 16 rows, every group, into w.norm_s, from w.row_norms and
// w.group_sums: both written by threads of the same warp (the split thread of
// row r and the quantize threads of rows q_row, q_row + 8 are in warp r / 16),
// so a warp barrier suffices.
__device__ __forceinline__ void CorrectKNorms(const SlabWarpgroup& w, const PackedHeadDesc& desc) {
  __syncwarp();
  const int row0 = 16 * (w.wt >> 5);
  for (int k = w.lane; k < desc.num_groups * 16; k += 32) {
    const int g = k >> 4, i = g * kSlabTokens + row0 + (k & 15);
    const double sqrt_d = sqrt(static_cast<double>(desc.size[g]));
    w.norm_s[i] = CorrectedNorm(w.row_norms[i], sqrt_d, w.group_sums[i]);
  }
}

// A whole version-1 page's K codes and norms in one pass over the groups
// (StoreGroup's stores, a group at a time, left most threads idle): thread wt
// writes chunk wt - offset of the group holding position wt (a group of d
// positions has d chunks of 64 codes), then the groups' norms in 16-byte units.
// Groups: SlabBlocks or PairGroups.
template <typename Groups>
__device__ __forceinline__ void StoreKPage(const EncodePackParams& p, int head,
                                           const Groups& groups, const PackedHeadDesc& desc,
                                           const SlabWarpgroup& w) {
  uint8_t* page =
      p.pages + ((w.slot_s[0] / kKernelPageTokens) * p.num_kv_heads + head) * p.page_stride;
  const int g = groups.OfPosition(w.wt), o = desc.offset[g];
  WithConstant<1, 8>(desc.bits[g], [&](auto b) {
    StoreChunk<b>(page + desc.block_offset[g], w.code_s, kKernelPageTokens * o, w.wt - o,
                  /*dim_major=*/false);
  });
  constexpr int kUnits = 2 * kSlabTokens / 16;  // a group's norms
  if (w.wt < kUnits * desc.num_groups) {
    const int unit_g = w.wt / kUnits, unit = w.wt % kUnits;
    reinterpret_cast<uint4*>(page + desc.k_norm_offset + 2 * kKernelPageTokens * unit_g)[unit] =
        reinterpret_cast<const uint4*>(w.norm_s + unit_g * kSlabTokens)[unit];
  }
}

// K of slabs first, first + kWgmmaGroups, .. (< end) of one KV head by
// warpgroup w; the CTA's shared memory holds the code tables (c² and code
// grids of every width: StageWgmmaCodeTables) and the head's descriptor. Stages K's
// rotations and the permutation pairs (whole CTA) first. WHOLE: every group
// spans whole 16-position blocks (EncodePackParams::k_groups_whole).
template <bool WHOLE>
__device__ __forceinline__ void EncodeKSlabs(const EncodePackParams& p, int head, int first,
                                             int end, char* smem, const SlabWarpgroup& w, int tid) {
  using S = WgmmaSmem;
  const PackedHeadDesc& desc = *reinterpret_cast<const PackedHeadDesc*>(smem + S::kDesc);
  const auto& fragment = *reinterpret_cast<const FragmentHeadGeometry*>(smem + S::kFragment);
  // The first slab's rows on their way while B is staged.
  if (first < end) StageSlabRows(p, p.k, head, first, w);
  uint32_t* pairs = reinterpret_cast<uint32_t*>(smem + S::kPermutation);
  StagePermutationPairs(pairs, desc, tid);
  using Groups = std::conditional_t<WHOLE, SlabBlocks, PairGroups>;
  Groups groups = [&] {
    if constexpr (WHOLE) {
      return SlabBlocks(desc);
    } else {
      uint8_t* table = reinterpret_cast<uint8_t*>(smem + S::kPairGroups);
      StagePairGroups(table, desc, tid);
      __syncthreads();  // the table, read by the rotation's staging below
      return PairGroups{table};
    }
  }();
  StageWgmmaRotation(smem + S::kRotation, KRotation<Groups>{p.rotations, &desc, groups}, tid);
  FenceProxyAsyncShared();  // B's planes are read by the async proxy
  __syncthreads();
  const uint32_t rotation_hi = SharedAddress(smem + S::kRotation);
  const CodeGrid& grid = *reinterpret_cast<const CodeGrid*>(smem + S::kGrid);
  const double* squares = reinterpret_cast<const double*>(smem + S::kSquares);
  for (int slab = first; slab < end; slab += kWgmmaGroups) {
    // Their first barrier: the last slab's stores are done.
    if constexpr (WHOLE) {
      SplitKRows(w, groups, pairs, desc);
    } else {
      SplitKAnyRows(w, groups, pairs, desc);
    }
    LoadSlabSlots(p, slab, w);
    WarpgroupBarrier(w.id);  // planes, slots visible
    float acc[64];
    IssueSlabProducts(acc, w.rows, rotation_hi);
    WgmmaWait(acc);
    WarpgroupBarrier(w.id);  // the whole warpgroup's products have read the planes
    if (slab + kWgmmaGroups < end) StageSlabRows(p, p.k, head, slab + kWgmmaGroups, w);
    if constexpr (WHOLE) {
      QuantizeKSlab(w, acc, groups, desc, grid, squares);
    } else {
      QuantizeKAnySlab(w, acc, groups, desc, grid);
      SumKCodeSquares(w, desc, squares);
    }
    CorrectKNorms(w, desc);
    const bool whole_page = SlabIsWholePage(w);
    if (whole_page && p.fragment == nullptr) {
      StoreKPage(p, head, groups, desc, w);
    } else if (whole_page) {
      StoreFragmentKPage(p, head, desc, fragment, 0, desc.num_groups, w.code_s, w.norm_s,
                         w.slot_s[0], w.wt);
    } else {
      for (int g = 0; g < desc.num_groups; ++g) {
        StoreGroup(p, head, /*is_v=*/false, g, GroupToEncode(desc, false, p.v_bits, kWgmmaDim, g),
                   w.code_s, w.norm_s, w.slot_s, whole_page, w.wt);
      }
    }
  }
}

}  // namespace kvplan::kernels::internal

#endif  // KVPLAN_KERNELS_ENCODE_K_WGMMA_CUH_
