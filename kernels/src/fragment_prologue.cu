#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/fragment_prologue.cuh"
#include "kvplan/kernels/launch.h"

namespace kvplan::kernels {

cudaError_t LaunchFragmentPrologue(const PackedDecodeParams& p, uint16_t* q_rot,
                                   cudaStream_t stream) {
  if (p.batch <= 0) return cudaSuccess;
  if (p.num_splits < 1 || p.num_kv_heads <= 0 || q_rot == nullptr ||
      p.max_sink + p.max_recent > kMaxFp16Tokens) {
    return cudaErrorInvalidValue;
  }
  return DispatchHeadDim(p.head_dim, [&](auto hd) {
    return DispatchGroupSize(p.group_size, [&](auto gs) {
      // An ordinary launch: q is an earlier kernel's output.
      FragmentPrologueKernel<decltype(hd)::value, decltype(gs)::value>
          <<<dim3(p.num_kv_heads, p.batch, 2), kFragmentPrologueThreads, 0, stream>>>(p, q_rot);
      return cudaGetLastError();
    });
  });
}

}  // namespace kvplan::kernels
