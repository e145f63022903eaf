// Encode + pack of a few tokens, such as a decode step's new ones (one per
// sequence), device code. The bulk kernel (encode_pack.cuh) stages each CTA's
// rotations into shared memory as split fp16 planes and rotates 16-row tiles
// on tensor cores: for one token that fixed cost is the whole launch (21-27 µs
// on the H200, more than a batch-1 decode step: NOTES.md run 28). Here a CTA
// takes one (token, KV head, K|V), a thread one permuted position p (V: one
// dim), and the rotation is read straight from the plan's fp32 Rᵀ in L2:
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
// fragment-native pages. Grid (num_tokens, num_kv_heads, 2), HEAD_DIM threads;
// negative slots skip their token.
#ifndef KVPLAN_KERNELS_ENCODE_APPEND_CUH_
#define KVPLAN_KERNELS_ENCODE_APPEND_CUH_

#include <cstdint>

#include "kvplan/kernels/encode_pack.cuh"

namespace kvplan::kernels {

namespace internal {

// Launches of at most this many tokens take this kernel when the caller
// leaves the launch shape to the launcher (one bulk slab's worth: the bulk
// kernel's fixed cost is a slab's whatever its tokens).
inline constexpr int kAppendMaxTokens = 64;

}  // namespace internal

template <int HEAD_DIM>
__global__ void __launch_bounds__(HEAD_DIM)
    EncodeAppendKernel(const __grid_constant__ EncodePackParams p) {
  using namespace internal;
  const int token = blockIdx.x, head = blockIdx.y;
  const bool is_v = blockIdx.z == 1;
  const int64_t slot = p.slot_mapping[token];
  if (slot < 0) return;
  const int pos = threadIdx.x;
  const PackedHeadDesc& desc = p.heads[head];
  __shared__ float x_s[HEAD_DIM];  // the row in permuted order (V: as is)
  __shared__ double lane_sums[kMaxKGroups][4];
  __shared__ float scale_s[kMaxKGroups];
  __shared__ double norm_s[kMaxKGroups];

  const float* row =
      (is_v ? p.v : p.k) + (static_cast<int64_t>(token) * p.num_kv_heads + head) * HEAD_DIM;
  x_s[pos] = row[is_v ? pos : desc.permutation[pos]];
  const int num_groups = is_v ? 1 : desc.num_groups;
  // This thread's group: the last whose first position is at or before pos.
  int g = 0;
  for (int h = 1; h < num_groups; ++h) g = desc.offset[h] <= pos ? h : g;
  const EncodeGroup grp = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, g);
  const int i = pos - grp.offset, d = grp.size;
  __syncthreads();

  // ‖x_g‖², lane sums: thread 4g' + lane sums x² over the group's i ≡ lane (mod 4).
  const auto lane_sum = [&](int group, int lane, auto term) {
    const EncodeGroup gg = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, group);
    double sum = 0.0;
    for (int k = lane; k < gg.size; k += 4) sum = term(sum, gg.offset + k);
    lane_sums[group][lane] = sum;
  };
  // Their total, (s0 + s1) + (s2 + s3).
  const auto lane_total = [&](int group) {
    return __dadd_rn(__dadd_rn(lane_sums[group][0], lane_sums[group][1]),
                     __dadd_rn(lane_sums[group][2], lane_sums[group][3]));
  };
  if (pos < 4 * num_groups) {
    lane_sum(pos / 4, pos % 4, [&](double sum, int q) { return AddSquare(sum, x_s[q]); });
  }
  __syncthreads();
  if (pos < num_groups) {
    const double n = sqrt(lane_total(pos));
    const double sqrt_d =
        sqrt(static_cast<double>(GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, pos).size));
    norm_s[pos] = n;
    scale_s[pos] = n > 0.0 && isfinite(n) ? static_cast<float>(__ddiv_rn(sqrt_d, n)) : 0.0f;
  }

  // (R·x)_i, the CPU's sequential fp32 sum over j (Rᵀ[j][i] = R[i][j]).
  const float* rt = p.rotations + grp.rotation_t;
  float acc = 0.0f;
#pragma unroll 8
  for (int j = 0; j < d; ++j)
    acc = __fadd_rn(acc, __fmul_rn(__ldg(rt + j * d + i), x_s[grp.offset + j]));
  __syncthreads();  // scale_s and norm_s written
  const float z = __fmul_rn(acc, scale_s[g]);
  const float* boundaries = p.tables->boundaries[grp.bits - 1];
  int code = 0;
  for (int step = 1 << (grp.bits - 1); step > 0; step >>= 1) {
    code += boundaries[code + step - 1] < z ? step : 0;
  }

  // ‖c[codes]‖², lane sums as above (the codes through shared memory).
  __shared__ uint8_t code_s[HEAD_DIM];
  code_s[pos] = static_cast<uint8_t>(code);
  __syncthreads();
  if (pos < 4 * num_groups) {
    const int bits = GroupToEncode(desc, is_v, p.v_bits, HEAD_DIM, pos / 4).bits;
    lane_sum(pos / 4, pos % 4, [&](double sum, int q) {
      return __dadd_rn(sum, Square(p.tables->centroids[bits - 1][code_s[q]]));
    });
  }
  __syncthreads();
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

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_APPEND_CUH_
