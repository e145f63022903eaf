#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {

cudaError_t LaunchEncodePack(const EncodePackParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.v_bits < 1 || p.v_bits > 8 || p.num_kv_heads <= 0) return cudaErrorInvalidValue;
  return DispatchHeadDim(p.head_dim, [&](auto hd) {
    const dim3 grid((p.num_tokens + internal::kEncodeTokens - 1) / internal::kEncodeTokens,
                    p.num_kv_heads, 2);
    EncodePackKernel<decltype(hd)::value><<<grid, internal::kEncodeThreads, 0, stream>>>(p);
    return cudaGetLastError();
  });
}

}  // namespace kvplan::kernels
