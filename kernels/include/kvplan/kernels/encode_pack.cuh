// Encode + pack: post-RoPE K and V of a layer's new tokens into their page
// slots (core/packed_page.h), device code. One launch covers every token and
// KV head, K and V: grid (ceil(num_tokens / kEncodeTokens), num_kv_heads, 2),
// z = 0 encodes K with the head's group layout, z = 1 V (one group of
// head_dim at v_bits, identity permutation).
//
// The arithmetic is core/grouped_quantizer.h's, operation for operation: fp64
// group norms as four interleaved partial sums, fp32 rotations summing j in
// order with separately rounded products, z = y·fp32(√d / n), the code = the
// number of boundaries strictly below z, n' = n·√d / ‖c[codes]‖ rounded to fp16
// with saturation. So codes and norms equal the CPU's bit for bit.
//
// Codes of neighbouring slots share 32-bit words, so each code is stored with
// an atomicAnd (clear its bits) and an atomicOr (set them): concurrent writers
// of other slots are safe, two writers of one slot are not.
#ifndef KVPLAN_KERNELS_ENCODE_PACK_CUH_
#define KVPLAN_KERNELS_ENCODE_PACK_CUH_

#include <cstdint>

#include "kvplan/kernels/device_utils.cuh"
#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

namespace internal {

inline constexpr int kEncodeTokens = 32;
inline constexpr int kEncodeThreads = 128;

__device__ __forceinline__ void StoreCode(uint32_t* words, int64_t bit, int stride, uint32_t code) {
  const int64_t w = bit >> 5;
  const int shift = static_cast<int>(bit & 31);
  const uint32_t mask = (1u << stride) - 1u;
  atomicAnd(words + w, ~(mask << shift));
  atomicOr(words + w, code << shift);
  if (shift + stride > 32) {
    const int spill = 32 - shift;
    atomicAnd(words + w + 1, ~(mask >> spill));
    atomicOr(words + w + 1, code >> spill);
  }
}

}  // namespace internal

template <int HEAD_DIM>
__global__ void __launch_bounds__(internal::kEncodeThreads)
    EncodePackKernel(const __grid_constant__ EncodePackParams p) {
  using namespace internal;
  __shared__ float x_s[kEncodeTokens][HEAD_DIM];
  __shared__ uint8_t code_s[kEncodeTokens][HEAD_DIM];
  __shared__ double norm_s[kEncodeTokens];
  __shared__ float scale_s[kEncodeTokens];
  const int tid = threadIdx.x;
  const int token0 = blockIdx.x * kEncodeTokens;
  const int kv_head = blockIdx.y;
  const bool is_v = blockIdx.z == 1;
  const PackedHeadDesc& desc = p.heads[kv_head];
  const int tokens = min(kEncodeTokens, p.num_tokens - token0);
  const float* src = is_v ? p.v : p.k;

  // Gather in permuted order (V: identity).
  for (int i = tid; i < kEncodeTokens * HEAD_DIM; i += kEncodeThreads) {
    const int tk = i / HEAD_DIM, pos = i % HEAD_DIM;
    const int dim = is_v ? pos : desc.permutation[pos];
    x_s[tk][pos] =
        tk < tokens
            ? src[(static_cast<int64_t>(token0 + tk) * p.num_kv_heads + kv_head) * HEAD_DIM + dim]
            : 0.0f;
  }
  const int num_groups = is_v ? 1 : desc.num_groups;
  for (int grp = 0; grp < num_groups; ++grp) {
    const int bits = is_v ? p.v_bits : desc.bits[grp];
    const int d = is_v ? HEAD_DIM : desc.size[grp];
    const int off = is_v ? 0 : desc.offset[grp];
    const double sqrt_d = sqrt(static_cast<double>(d));
    __syncthreads();
    if (tid < kEncodeTokens) {
      const float* xt = &x_s[tid][off];
      const double norm = sqrt(SumOf4Lanes(d, [&](int i) {
        return __dmul_rn(static_cast<double>(xt[i]), static_cast<double>(xt[i]));
      }));
      norm_s[tid] = norm;
      scale_s[tid] = norm > 0.0 && isfinite(norm) ? static_cast<float>(sqrt_d / norm) : 0.0f;
    }
    __syncthreads();
    // y_i = Σ_j R[i][j]·x_j, j in order, separately rounded (Rᵀ read coalesced).
    const float* rt = p.rotations + (is_v ? desc.v_rotation_t : desc.k_rotation_t[grp]);
    const float* boundaries = p.tables->boundaries[bits - 1];
    for (int i = tid; i < d; i += kEncodeThreads) {
      float acc[kEncodeTokens];
#pragma unroll
      for (int tk = 0; tk < kEncodeTokens; ++tk) acc[tk] = 0.0f;
      for (int j = 0; j < d; ++j) {
        const float r = rt[static_cast<int64_t>(j) * d + i];
#pragma unroll
        for (int tk = 0; tk < kEncodeTokens; ++tk)
          acc[tk] = __fadd_rn(acc[tk], __fmul_rn(r, x_s[tk][off + j]));
      }
#pragma unroll 4
      for (int tk = 0; tk < kEncodeTokens; ++tk) {
        const float z = __fmul_rn(acc[tk], scale_s[tk]);
        int pos = 0;
        for (int step = 1 << (bits - 1); step > 0; step >>= 1) {
          pos += boundaries[pos + step - 1] < z ? step : 0;
        }
        code_s[tk][off + i] = static_cast<uint8_t>(pos);
      }
    }
    __syncthreads();
    const float* centroids = p.tables->centroids[bits - 1];
    const int stride = bits;  // page streams are dense at every width
    for (int i = tid; i < tokens * d; i += kEncodeThreads) {
      const int tk = i / d, c = i % d;
      const int64_t slot = p.slot_mapping[token0 + tk];
      if (slot < 0) continue;
      uint8_t* page =
          p.pages + ((slot / kKernelPageTokens) * p.num_kv_heads + kv_head) * p.page_stride;
      const int64_t s = slot % kKernelPageTokens;
      const int64_t element = is_v ? c * kKernelPageTokens + s : s * d + c;
      uint32_t* block =
          reinterpret_cast<uint32_t*>(page + (is_v ? desc.v_block_offset : desc.block_offset[grp]));
      StoreCode(block, element * stride, stride, code_s[tk][off + c]);
    }
    if (tid < tokens) {
      const int64_t slot = p.slot_mapping[token0 + tid];
      if (slot >= 0) {
        const uint8_t* codes = &code_s[tid][off];
        const double code_norm2 = SumOf4Lanes(d, [&](int i) {
          const double c = centroids[codes[i]];
          return __dmul_rn(c, c);
        });
        const double corrected = __ddiv_rn(__dmul_rn(norm_s[tid], sqrt_d), sqrt(code_norm2));
        uint8_t* page =
            p.pages + ((slot / kKernelPageTokens) * p.num_kv_heads + kv_head) * p.page_stride;
        const int64_t s = slot % kKernelPageTokens;
        uint16_t* norm = reinterpret_cast<uint16_t*>(
            page + (is_v ? desc.v_norm_offset + 2 * s
                         : desc.k_norm_offset + 2 * (grp * kKernelPageTokens + s)));
        *norm = FloatToHalfSaturate(static_cast<float>(corrected));
      }
    }
  }
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ENCODE_PACK_CUH_
