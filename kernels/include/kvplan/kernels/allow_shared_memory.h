// Lets a kernel launch with `bytes` of dynamic shared memory (above the
// default 48 KB) and asks for the carveout that fits the most CTAs per SM:
// host-side attribute writes, cheap and capture-safe, so launchers call it on
// every launch (the attributes are per device, a process may use several).
//
// Example:
//   if (cudaError_t e = AllowSharedMemory(kernel, bytes); e != cudaSuccess) return e;
//   kernel<<<grid, block, bytes, stream>>>(params);
#ifndef KVPLAN_KERNELS_ALLOW_SHARED_MEMORY_H_
#define KVPLAN_KERNELS_ALLOW_SHARED_MEMORY_H_

#include <cuda_runtime_api.h>

namespace kvplan::kernels {

template <class Kernel>
cudaError_t AllowSharedMemory(Kernel* kernel, int bytes) {
  if (cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
      e != cudaSuccess) {
    return e;
  }
  return cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                              cudaSharedmemCarveoutMaxShared);
}

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_ALLOW_SHARED_MEMORY_H_
