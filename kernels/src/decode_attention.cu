#include "kvplan/kernels/decode_attention.cuh"
#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {
namespace {

template <int HEAD_DIM, int GROUP_SIZE, int V_BITS>
cudaError_t LaunchPackedDecodeTyped(const PackedDecodeParams& p, cudaStream_t stream) {
  const int q_heads = p.num_kv_heads * GROUP_SIZE;
  RotateQueryKernel<HEAD_DIM, GROUP_SIZE><<<dim3(q_heads, p.batch), 128, 0, stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;

  auto* kernel = PackedAttentionKernel<HEAD_DIM, GROUP_SIZE, V_BITS>;
  const int smem = internal::AttentionSmemBytes<HEAD_DIM>(static_cast<int>(p.page_stride));
  // Raising the limit is a host-side attribute write, cheap and capture-safe.
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      e != cudaSuccess) {
    return e;
  }
  kernel<<<dim3(p.num_splits + 1, p.num_kv_heads, p.batch), internal::kAttentionThreads, smem,
           stream>>>(p);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;

  const int merge_smem = (p.num_splits + 1 + HEAD_DIM) * static_cast<int>(sizeof(float));
  MergeKernel<HEAD_DIM, GROUP_SIZE>
      <<<dim3(p.num_kv_heads * GROUP_SIZE, p.batch), HEAD_DIM, merge_smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchPackedDecode(const PackedDecodeParams& p, cudaStream_t stream) {
  if (p.batch <= 0) return cudaSuccess;
  if (p.num_splits < 1 || p.num_kv_heads <= 0 || p.page_stride <= 0 || p.page_stride % 16 != 0 ||
      p.max_sink + p.max_recent > kMaxFp16Tokens) {
    return cudaErrorInvalidValue;
  }
  return DispatchDecodeConfig(p.head_dim, p.group_size, p.v_bits, [&](auto hd, auto gs, auto vb) {
    return LaunchPackedDecodeTyped<decltype(hd)::value, decltype(gs)::value, decltype(vb)::value>(
        p, stream);
  });
}

}  // namespace kvplan::kernels
