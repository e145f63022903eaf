#include <algorithm>

#include "kvplan/kernels/allow_shared_memory.h"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/fragment_prologue.cuh"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/overlapping_launch.h"

namespace kvplan::kernels {
namespace {

// The new tokens' encode params fit the step's (same layer's heads and
// head_dim) and the fused grid (tokens on its y axis).
bool AppendFits(const PackedDecodeParams& p, const EncodePackParams& e) {
  return EncodeParamsValid(e) && e.num_tokens >= 0 && e.num_tokens <= kMaxFusedAppendTokens &&
         e.num_kv_heads == p.num_kv_heads && e.head_dim == p.head_dim;
}

}  // namespace

cudaError_t LaunchFragmentPrologue(const PackedDecodeParams& p, uint16_t* q_rot,
                                   cudaStream_t stream, const EncodePackParams* append) {
  // No step, but the new tokens still belong in their slots.
  if (p.batch <= 0) return append != nullptr ? LaunchEncodePack(*append, stream) : cudaSuccess;
  if (p.num_splits < 1 || p.num_kv_heads <= 0 || q_rot == nullptr ||
      p.max_sink + p.max_recent > kMaxFp16Tokens) {
    return cudaErrorInvalidValue;
  }
  if (append != nullptr && !AppendFits(p, *append)) return cudaErrorInvalidValue;
  const bool fused = append != nullptr && FragmentPrologueFusesAppend(p, *append);
  if (append != nullptr && append->num_tokens > 0 && !fused) {
    if (cudaError_t e = LaunchEncodePack(*append, stream); e != cudaSuccess) return e;
  }
  return DispatchHeadDim(p.head_dim, [&](auto hd) {
    return DispatchGroupSize(p.group_size, [&](auto gs) {
      constexpr int kHeadDim = decltype(hd)::value, kGroupSize = decltype(gs)::value;
      // A programmatic dependent of the previous kernel (q is its output, or
      // the previous step's merge): the kernel waits for it first, so only its
      // launch (and the new tokens' reads of the plan) overlaps that kernel's tail.
      if (!fused) {
        const OverlappingLaunch launch(dim3(p.num_kv_heads, p.batch, 2),
                                       dim3(kFragmentPrologueThreads), 0, stream);
        return cudaLaunchKernelEx(launch.config(),
                                  FragmentPrologueKernel<kHeadDim, kGroupSize, false>, p, q_rot,
                                  EncodePackParams{});
      }
      auto* kernel = FragmentPrologueKernel<kHeadDim, kGroupSize, true>;
      constexpr int kSmem = internal::kAppendSmemBytes<kHeadDim>;
      if (cudaError_t e = AllowSharedMemory(kernel, kSmem); e != cudaSuccess) return e;
      const OverlappingLaunch launch(dim3(p.num_kv_heads, std::max(p.batch, append->num_tokens), 4),
                                     dim3(kFragmentPrologueThreads), kSmem, stream);
      return cudaLaunchKernelEx(launch.config(), kernel, p, q_rot, *append);
    });
  });
}

}  // namespace kvplan::kernels
