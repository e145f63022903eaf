#include <algorithm>

#include "kvplan/kernels/allow_shared_memory.h"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/encode_append.cuh"
#include "kvplan/kernels/encode_pack.cuh"
#include "kvplan/kernels/encode_slabs.h"
#include "kvplan/kernels/encode_wgmma.cuh"
#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {
namespace {

// The slab kernel over K and V.
template <int HEAD_DIM, bool K_WHOLE>
cudaError_t LaunchEncodePackTyped(const EncodePackParams& p, cudaStream_t stream, int per_cta) {
  auto* kernel = EncodePackKernel<HEAD_DIM, K_WHOLE>;
  constexpr int kSmem = internal::EncodeSmem<HEAD_DIM>::kBytes;
  if (cudaError_t e = AllowSharedMemory(kernel, kSmem); e != cudaSuccess) return e;
  const int slabs = (p.num_tokens + internal::kSlabTokens - 1) / internal::kSlabTokens;
  if (per_cta == 0) per_cta = EncodeSlabsPerCta(slabs, p.num_kv_heads, p.num_sms);
  const dim3 grid((slabs + per_cta - 1) / per_cta, p.num_kv_heads, 2);
  kernel<<<grid, internal::kEncodeThreads, kSmem, stream>>>(p, per_cta);
  return cudaGetLastError();
}

// The wgmma encode of K and V: one CTA per SM, a wave per kind or the whole
// grid one wave (WgmmaEncodeSlabsPerCta); V's CTAs follow K's in the grid.
template <int V_BITS>
cudaError_t LaunchEncodeWgmmaTyped(const EncodePackParams& p, cudaStream_t stream) {
  auto* kernel =
      p.k_groups_whole ? EncodeWgmmaKernel<V_BITS, true> : EncodeWgmmaKernel<V_BITS, false>;
  constexpr int kSmem = internal::WgmmaSmem::kBytes;
  if (cudaError_t e = AllowSharedMemory(kernel, kSmem); e != cudaSuccess) return e;
  const int slabs = (p.num_tokens + internal::kSlabTokens - 1) / internal::kSlabTokens;
  const int per_cta =
      WgmmaEncodeSlabsPerCta(slabs, p.num_kv_heads, p.num_sms, internal::kWgmmaGroups);
  const dim3 grid((slabs + per_cta - 1) / per_cta, p.num_kv_heads, 2);
  kernel<<<grid, internal::kWgmmaThreads, kSmem, stream>>>(p, per_cta);
  return cudaGetLastError();
}

// Every V width (1-8) has its kernel: encode serves every plan.
cudaError_t LaunchEncodeWgmma(const EncodePackParams& p, cudaStream_t stream) {
  return DispatchOneOf<1, 2, 3, 4, 5, 6, 7, 8>(p.v_bits, [&](auto bits) {
    return LaunchEncodeWgmmaTyped<decltype(bits)::value>(p, stream);
  });
}

template <int HEAD_DIM>
cudaError_t LaunchEncodeAppendTyped(const EncodePackParams& p, cudaStream_t stream) {
  auto* kernel = EncodeAppendKernel<HEAD_DIM>;
  constexpr int kSmem = internal::kAppendSmemBytes<HEAD_DIM>;
  if (cudaError_t e = AllowSharedMemory(kernel, kSmem); e != cudaSuccess) return e;
  kernel<<<dim3(p.num_tokens, p.num_kv_heads, 2), HEAD_DIM, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchEncodePack(const EncodePackParams& p, cudaStream_t stream, int slabs_per_cta) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (!EncodeParamsValid(p) || slabs_per_cta < 0 || slabs_per_cta > internal::kMaxSlabsPerCta) {
    return cudaErrorInvalidValue;
  }
  return DispatchHeadDim(p.head_dim, [&](auto hd) {
    constexpr int kHeadDim = decltype(hd)::value;
    // A few tokens (a decode step's): a CTA per token and head, no staging.
    if (TakesFewTokenEncode(p, slabs_per_cta)) {
      return LaunchEncodeAppendTyped<kHeadDim>(p, stream);
    }
    if (TakesWgmmaEncode(p, slabs_per_cta)) return LaunchEncodeWgmma(p, stream);
    return p.k_groups_whole ? LaunchEncodePackTyped<kHeadDim, true>(p, stream, slabs_per_cta)
                            : LaunchEncodePackTyped<kHeadDim, false>(p, stream, slabs_per_cta);
  });
}

}  // namespace kvplan::kernels
