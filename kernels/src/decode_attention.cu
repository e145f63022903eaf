#include "kvplan/kernels/decode_attention.cuh"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/overlapping_launch.h"

namespace kvplan::kernels {
namespace {

template <int HEAD_DIM, int GROUP_SIZE>
cudaError_t LaunchMergeTyped(const PackedDecodeParams& p, cudaStream_t stream) {
  // It may start under the attention's tail: it loads V's rotation, then waits.
  const OverlappingLaunch launch(
      dim3(p.num_kv_heads * GROUP_SIZE, p.batch), dim3(internal::MergeThreads<HEAD_DIM>()),
      static_cast<size_t>(MergeSmemFloats<HEAD_DIM>(p.num_splits)) * sizeof(float), stream);
  return cudaLaunchKernelEx(launch.config(), MergeKernel<HEAD_DIM, GROUP_SIZE>, p);
}

template <int HEAD_DIM, int GROUP_SIZE, int V_BITS>
cudaError_t LaunchPackedDecodeTyped(const PackedDecodeParams& p, cudaStream_t stream) {
  auto* kernel = PackedAttentionKernel<HEAD_DIM, GROUP_SIZE, V_BITS>;
  const int smem = internal::AttentionSmemBytes<HEAD_DIM>(static_cast<int>(p.page_stride));
  // Raising the limit is a host-side attribute write, cheap and capture-safe.
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      e != cudaSuccess) {
    return e;
  }
  // An ordinary launch: the pages and q it reads are earlier kernels' output.
  kernel<<<dim3(p.num_splits + 1, p.num_kv_heads, p.batch), internal::kAttentionThreads, smem,
           stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  return LaunchMergeTyped<HEAD_DIM, GROUP_SIZE>(p, stream);
}

bool ValidStep(const PackedDecodeParams& p) {
  return p.num_splits >= 1 && p.num_kv_heads > 0 && p.page_stride > 0 && p.page_stride % 16 == 0 &&
         p.max_sink + p.max_recent <= kMaxFp16Tokens;
}

}  // namespace

cudaError_t LaunchPackedDecode(const PackedDecodeParams& p, cudaStream_t stream) {
  if (p.batch <= 0) return cudaSuccess;
  // Fragment-native pages are FragmentDecodeProgram::Step's.
  if (!ValidStep(p) || p.fragment != nullptr) return cudaErrorInvalidValue;
  return DispatchDecodeConfig(p.head_dim, p.group_size, p.v_bits, [&](auto hd, auto gs, auto vb) {
    return LaunchPackedDecodeTyped<decltype(hd)::value, decltype(gs)::value, decltype(vb)::value>(
        p, stream);
  });
}

cudaError_t LaunchPackedMerge(const PackedDecodeParams& p, cudaStream_t stream) {
  if (p.batch <= 0) return cudaSuccess;
  if (!ValidStep(p)) return cudaErrorInvalidValue;
  return DispatchHeadDim(p.head_dim, [&](auto hd) {
    return DispatchGroupSize(p.group_size, [&](auto gs) {
      return LaunchMergeTyped<decltype(hd)::value, decltype(gs)::value>(p, stream);
    });
  });
}

}  // namespace kvplan::kernels
