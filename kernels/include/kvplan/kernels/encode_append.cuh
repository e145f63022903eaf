// Encode + pack of a few tokens, such as a decode step's new ones (one per
// sequence), device code. The bulk kernel (encode_pack.cuh) stages each CTA's
// rotations into shared memory as split fp16 planes and rotates 16-row tiles
// on tensor cores: for one token that fixed cost is the whole launch (21-27 µs
// on the H200, more than a batch-1 decode step: NOTES.md run 28). Here a CTA
// takes one (token, KV head, K|V), a thread one permuted position p (V: one
// dim). The CTA's fp32 Rᵀ blocks come whole into shared memory through the
// bulk copy engine (one instruction, no per-element address arithmetic),
// while the row's norm is summed:
//   n   = ‖x_g‖: fp64, the CPU's four interleaved partial sums (a thread per
//         group and lane), (s0 + s1) + (s2 + s3);
//   z_i = fp32(Σ_j R[i][j]·x_j, j = 0, 1, ... in order, each product and sum
//         rounded to fp32) · fp32(√d / n): the CPU's order and roundings
//         (core/grouped_quantizer.cc, AxpyRows then QuantizeCoordinates), so
//         z, and with it every code, equals the CPU's bit for bit;
//   code = the number of boundaries strictly below z;
//   n'  = n·√d / ‖c[codes]‖ (fp64, four-lane sums), fp16 with saturation.
// Codes go into each token's slot one by one with atomics (neighbouring slots
// share words), as the bulk kernel stores decode tokens, into version-1 or
// fragment-native pages. EncodeAppendKernel: grid (num_tokens, num_kv_heads,
// 2), HEAD_DIM threads, kAppendSmemBytes of dynamic shared memory; negative
// slots skip their token. A fragment step's prologue can take the same work
// (EncodeAppendToken) in its own launch (fragment_prologue.cuh).
// Latency decides this kernel (a few CTAs, one short dependent chain each):
// every load that does not need an earlier result is issued at the start.
#ifndef KVPLAN_KERNELS_ENCODE_APPEND_CUH_
#define KVPLAN_KERNELS_ENCODE_APPEND_CUH_

#include <cstdint>
#include <type_traits>

#include "kvplan/kernels/encode_pack.cuh"

namespace kvplan::kernels {

namespace internal {

// The few-token kernel's dynamic shared memory: one (head, K|V)'s Rᵀ blocks
// (at most HEAD_DIM² floats), plus 4 floats for the copy's aligned start.
template <int HEAD_DIM>
inline constexpr int kAppendSmemBytes = (HEAD_DIM * HEAD_DIM + 4) * 4;

}  // namespace internal

// Token `token` of p, KV head `head`, K or V (is_v), by the CTA's first
// HEAD_DIM threads (pos: the thread's position); the CTA's other threads, if
// any, must have left (the barriers here count HEAD_DIM threads).
// rotation_s4: kAppendSmemBytes of dynamic shared memory. DEPENDENT: the
// CTA belongs to a programmatic dependent launch (the fused step prologue,
// fragment_prologue.cuh), whose previous kernel may still be writing the
// token's slot and row: it reads the plan, waits, then reads those (a plain
// launch reads them first, one L2 round trip sooner: 0.3 µs at batch 1,
// NOTES run 30).
template <int HEAD_DIM, bool DEPENDENT>
__device__ __forceinline__ void EncodeAppendToken(const EncodePackParams& p, int token, int head,
                                                  bool is_v, int pos, float4* rotation_s4) {
  using namespace internal;
  const PackedHeadDesc& desc = p.heads[head];
  __shared__ float x_s[HEAD_DIM];    // the row in permuted order (V: as is)
  __shared__ double c2_s[HEAD_DIM];  // c[code]² per position
  __shared__ float boundary_s[kMaxKGroups][255];
  // Rᵀ arrives in this many pieces (2 beat 1 and 4 at batch 1: NOTES.md run 29).
  constexpr int kPieces = 2;
  __shared__ uint64_t rotation_bars[kPieces];
  __shared__ double lane_sums[kMaxKGroups][4];
  __shared__ float scale_s[kMaxKGroups];
  __shared__ double norm_s[kMaxKGroups];
  const auto sync = [] { NamedBarrier<1>(HEAD_DIM); };

  // The slot, Rᵀ (its copy needs only the descriptor), the row value and the
  // boundaries are all on their way before the first barrier, so that their
  // round trips overlap.
  // A dependent CTA reads the slot and the row only after its wait (below).
  int64_t slot = DEPENDENT ? 0 : p.slot_mapping[token];
  // The (head, K|V)'s Rᵀ blocks (K's groups lie back to back, then V's)
  // through the bulk copy engine, in kPieces pieces on their own mbarriers so
  // that the sum starts on the first while the rest arrive: per element, a
  // load with its address arithmetic and predicate costs ~8 instructions
  // (NOTES.md run 29). The copy starts at the 16-byte boundary at or below
  // the first block and ends at or after the last (the plan's rotation region
  // holds V's forward rotation after every head's Rᵀ: the overhang stays in it).
  const int64_t first = is_v ? desc.v_rotation_t : desc.k_rotation_t[0];
  const int64_t count = is_v ? int64_t{HEAD_DIM} * HEAD_DIM : desc.v_rotation_t - first;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p.rotations + first);
  const uintptr_t aligned = begin & ~uintptr_t{15};
  const int lead = static_cast<int>(begin - aligned) / 4;  // floats before the first block
  const int total_bytes = static_cast<int>((lead + count) * 4 + 15) & ~15;
  const int piece_bytes = (total_bytes / kPieces + 15) & ~15;
  if (pos == 0) {
    for (int k = 0; k < kPieces; ++k) MbarrierInit(&rotation_bars[k], 1);
    FenceMbarrierInit();
    for (int k = 0; k < kPieces; ++k) {
      const int start = min(k * piece_bytes, total_bytes);
      const int bytes = min(piece_bytes, total_bytes - start);
      MbarrierArriveExpectTx(&rotation_bars[k], static_cast<uint32_t>(bytes));
      if (bytes > 0) {
        BulkCopyToShared(reinterpret_cast<char*>(rotation_s4) + start,
                         reinterpret_cast<const char*>(aligned) + start,
                         static_cast<uint32_t>(bytes), &rotation_bars[k]);
      }
    }
  }
  const int num_groups = is_v ? 1 : desc.num_groups;
  // This thread's group: the last whose first position is at or before pos.
  int g = 0;
#pragma unroll
  for (int h = 1; h < kMaxKGroups; ++h) g = h < num_groups && desc.offset[h] <= pos ? h : g;
  const EncodeGroup grp = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, g);
  const int i = pos - grp.offset, d = grp.size;
  const float* row =
      (is_v ? p.v : p.k) + (static_cast<int64_t>(token) * p.num_kv_heads + head) * HEAD_DIM;
  const auto row_value = [&] { return row[is_v ? pos : desc.permutation[pos]]; };
  float x = DEPENDENT ? 0.0f : row_value();
  // Every group's boundaries (at most 255 each), staged by all threads: all
  // loads first, then the stores. A loop over the thread's own group's
  // boundaries waited on a load per pass, and greedy plans' small groups at
  // high widths took up to 32 passes (2 dims at 6 bits; NOTES.md run 29). V has one group: its CTAs
  // skip K's predicated passes.
  const auto stage_boundaries = [&](auto groups) {
    constexpr int kGroups = decltype(groups)::value;
    constexpr int kPasses = (255 + HEAD_DIM - 1) / HEAD_DIM;
    float staged[kGroups][kPasses];
#pragma unroll
    for (int h = 0; h < kGroups; ++h) {
      const int bits = h < num_groups ? (is_v ? p.v_bits : desc.bits[h]) : 0;
      const float* boundaries = p.tables->boundaries[max(bits, 1) - 1];
#pragma unroll
      for (int u = 0; u < kPasses; ++u) {
        const int k = pos + u * HEAD_DIM;
        staged[h][u] = k < (1 << bits) - 1 ? __ldg(boundaries + k) : 0.0f;
      }
    }
#pragma unroll
    for (int h = 0; h < kGroups; ++h) {
#pragma unroll
      for (int u = 0; u < kPasses; ++u) {
        if (pos + u * HEAD_DIM < 255) boundary_s[h][pos + u * HEAD_DIM] = staged[h][u];
      }
    }
  };
  if (is_v) {
    stage_boundaries(std::integral_constant<int, 1>{});
  } else {
    stage_boundaries(std::integral_constant<int, kMaxKGroups>{});
  }
  if constexpr (DEPENDENT) {
    // Everything above reads only the plan (uploaded before any step); the
    // slot and the row may be the previous kernel's output.
    WaitForPrerequisiteGrids();
    AllowDependentLaunch();
    slot = p.slot_mapping[token];
    x = row_value();
  }
  if (slot < 0) {  // the whole CTA: one token; the copy must land before it exits
    if (pos == 0) {
      for (int k = 0; k < kPieces; ++k) MbarrierWait(&rotation_bars[k], 0);
    }
    return;
  }
  x_s[pos] = x;
  sync();

  // ‖x_g‖² and later ‖c[codes]‖²: thread 4g' + lane sums the group's
  // positions i ≡ lane (mod 4) in order, then (s0 + s1) + (s2 + s3).
  const auto lane_sum = [&](int group, int lane, auto term) {
    const EncodeGroup gg = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, group);
    double sum = 0.0;
#pragma unroll 8
    for (int k = lane; k < gg.size; k += 4) sum = term(sum, gg.offset + k);
    lane_sums[group][lane] = sum;
  };
  const auto lane_total = [&](int group) {
    return __dadd_rn(__dadd_rn(lane_sums[group][0], lane_sums[group][1]),
                     __dadd_rn(lane_sums[group][2], lane_sums[group][3]));
  };
  if (pos < 4 * num_groups) {
    lane_sum(pos / 4, pos % 4, [&](double sum, int q) { return AddSquare(sum, x_s[q]); });
  }
  sync();
  if (pos < num_groups) {
    const double n = sqrt(lane_total(pos));
    const double sqrt_d =
        sqrt(static_cast<double>(GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, pos).size));
    norm_s[pos] = n;
    scale_s[pos] = n > 0.0 && isfinite(n) ? static_cast<float>(__ddiv_rn(sqrt_d, n)) : 0.0f;
  }

  // (R·x)_i, the CPU's sequential fp32 sum over j (Rᵀ[j][i] = R[i][j]).
  // Row j of the column is float column_start + j·d of the copy; piece k
  // holds rows [j_k, j_k+1).
  const int column_start = lead + static_cast<int>(grp.rotation_t - first) + i;
  const float* column = reinterpret_cast<const float*>(rotation_s4) + column_start;
  float acc = 0.0f;
  int j = 0;
#pragma unroll 1
  for (int k = 0; k < kPieces; ++k) {
    const int piece_end = min((k + 1) * piece_bytes, total_bytes) / 4;
    const int j_end = min(d, max(j, (piece_end - column_start + d - 1) / d));
    MbarrierWait(&rotation_bars[k], 0);
#pragma unroll 8
    for (; j < j_end; ++j) acc = __fadd_rn(acc, __fmul_rn(column[j * d], x_s[grp.offset + j]));
  }
  sync();  // scale_s, norm_s and boundary_s written
  const float z = __fmul_rn(acc, scale_s[g]);
  int code = 0;
  for (int step = 1 << (grp.bits - 1); step > 0; step >>= 1) {
    code += boundary_s[g][code + step - 1] < z ? step : 0;
  }
  c2_s[pos] = Square(__ldg(p.tables->centroids[grp.bits - 1] + code));
  sync();
  if (pos < 4 * num_groups) {
    lane_sum(pos / 4, pos % 4, [&](double sum, int q) { return __dadd_rn(sum, c2_s[q]); });
  }
  sync();
  if (p.fragment != nullptr) {
    StoreFragmentSlotCode(p, head, is_v, grp.bits, grp.offset, slot, i, code);
  } else {
    StoreVersion1SlotCode(p, head, is_v, d, grp.bits, grp.block_offset, slot, i, code);
  }
  if (pos < num_groups) {
    const EncodeGroup own = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, pos);
    const uint16_t norm =
        CorrectedNorm(norm_s[pos], sqrt(static_cast<double>(own.size)), lane_total(pos));
    if (p.fragment != nullptr) {
      StoreFragmentSlotNorm(p, head, is_v, pos, slot, norm);
    } else {
      StoreVersion1SlotNorm(p, head, own.norm_offset, slot, norm);
    }
  }
}

template <int HEAD_DIM>
__global__ void __launch_bounds__(HEAD_DIM)
    EncodeAppendKernel(const __grid_constant__ EncodePackParams p) {
  extern __shared__ float4 rotation_s4[];  // kAppendSmemBytes
  EncodeAppendToken<HEAD_DIM, /*DEPENDENT=*/false>(p, blockIdx.x, blockIdx.y, blockIdx.z == 1,
                                                   static_cast<int>(threadIdx.x), rotation_s4);
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_APPEND_CUH_
