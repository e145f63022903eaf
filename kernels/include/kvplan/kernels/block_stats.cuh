// Block statistics on the GPU, device code: per (KV head, RoPE block) the
// sums Σ_tokens Σ_{query heads of the group} ‖q⁽ⁱ⁾‖² and Σ_tokens ‖k⁽ⁱ⁾‖² that
// core/block_stats.h accumulates, from fp32 activations, summed in fp64.
// Every query head of the group is its own sample (square first, then sum).
// CTAs add their partial sums with fp64 atomics, so the low bits of a sum
// depend on the order CTAs finish; BlockStats quantizes to 2^-48 anyway.
//
// Example (host): see launch.h, LaunchBlockStats.
#ifndef KVPLAN_KERNELS_BLOCK_STATS_CUH_
#define KVPLAN_KERNELS_BLOCK_STATS_CUH_

#include <cstdint>

#include "kvplan/kernels/params.h"

namespace kvplan::kernels {

// Block statistics (see BlockStatsParams). Grid: any number of CTAs, each a
// contiguous run of tokens; block 256 threads over (kv_head, block) pairs.
__global__ void BlockStatsKernel(const __grid_constant__ BlockStatsParams p) {
  const int pairs = p.num_kv_heads * p.num_blocks;
  const int per_cta = (p.num_tokens + gridDim.x - 1) / gridDim.x;
  const int begin = blockIdx.x * per_cta;
  const int end = min(p.num_tokens, begin + per_cta);
  const int q_heads = p.num_kv_heads * p.group_size;
  for (int idx = threadIdx.x; idx < pairs; idx += blockDim.x) {
    const int head = idx / p.num_blocks, blk = idx % p.num_blocks;
    const int d0 = p.block_dims[2 * blk], d1 = p.block_dims[2 * blk + 1];
    double q_sum = 0.0, k_sum = 0.0;
    for (int tk = begin; tk < end; ++tk) {
      const float* k = p.k + (static_cast<int64_t>(tk) * p.num_kv_heads + head) * p.head_dim;
      k_sum += static_cast<double>(k[d0]) * k[d0] + static_cast<double>(k[d1]) * k[d1];
      for (int h = 0; h < p.group_size; ++h) {
        const float* q =
            p.q + (static_cast<int64_t>(tk) * q_heads + head * p.group_size + h) * p.head_dim;
        q_sum += static_cast<double>(q[d0]) * q[d0] + static_cast<double>(q[d1]) * q[d1];
      }
    }
    if (begin < end) {
      atomicAdd(p.q_sums + idx, q_sum);
      atomicAdd(p.k_sums + idx, k_sum);
    }
  }
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_BLOCK_STATS_CUH_
