#include "kvplan/kernels/dispatch.h"
#include "kvplan/kernels/fragment_prologue.cuh"
#include "kvplan/kernels/launch.h"
#include "kvplan/kernels/overlapping_launch.h"

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
      // A programmatic dependent of the previous kernel (q is its output, or
      // the previous step's merge): the kernel waits for it first, so only its
      // launch overlaps that kernel's tail.
      const OverlappingLaunch launch(dim3(p.num_kv_heads, p.batch, 2),
                                     dim3(kFragmentPrologueThreads), 0, stream);
      return cudaLaunchKernelEx(launch.config(),
                                FragmentPrologueKernel<decltype(hd)::value, decltype(gs)::value>, p,
                                q_rot);
    });
  });
}

}  // namespace kvplan::kernels
