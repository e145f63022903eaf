#include "kvplan/kernels/block_stats.cuh"
#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {

cudaError_t LaunchBlockStats(const BlockStatsParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.num_kv_heads <= 0 || p.num_blocks <= 0 || p.group_size <= 0 ||
      p.head_dim < 2 * p.num_blocks) {
    return cudaErrorInvalidValue;
  }
  // Enough CTAs to fill the machine, each a run of at least 16 tokens.
  const int ctas = std::min(1024, (p.num_tokens + 15) / 16);
  BlockStatsKernel<<<ctas, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace kvplan::kernels
