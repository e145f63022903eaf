// The launch configuration of a kernel that may start while the stream's
// previous kernel still runs (programmatic dependent launch, sm_90): the
// kernel calls WaitForPrerequisiteGrids (device_utils.cuh) before it reads
// that kernel's output, and the previous kernel may let it start early with
// AllowDependentLaunch. Capturable in a CUDA graph. Host code, CUDA runtime
// only, so both the nvcc-built launchers and the JIT program use it.
//
// Example:
//   const OverlappingLaunch launch(grid, block, dynamic_smem, stream);
//   cudaLaunchKernelEx(launch.config(), MergeKernel<128, 4, 4>, params);   // a built-in kernel
//   cudaLaunchKernelExC(launch.config(), jit_kernel, args);                // a cudaKernel_t
#ifndef KVPLAN_KERNELS_OVERLAPPING_LAUNCH_H_
#define KVPLAN_KERNELS_OVERLAPPING_LAUNCH_H_

#include <cuda_runtime_api.h>

#include <cstddef>

namespace kvplan::kernels {

class OverlappingLaunch {
 public:
  OverlappingLaunch(dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream) {
    attribute_.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute_.val.programmaticStreamSerializationAllowed = 1;
    config_.gridDim = grid;
    config_.blockDim = block;
    config_.dynamicSmemBytes = dynamic_smem;
    config_.stream = stream;
    config_.attrs = &attribute_;
    config_.numAttrs = 1;
  }
  // config() points into this object.
  OverlappingLaunch(const OverlappingLaunch&) = delete;
  OverlappingLaunch& operator=(const OverlappingLaunch&) = delete;

  // For cudaLaunchKernelEx / cudaLaunchKernelExC; valid while this object lives.
  const cudaLaunchConfig_t* config() const { return &config_; }

 private:
  cudaLaunchAttribute attribute_ = {};
  cudaLaunchConfig_t config_ = {};
};

}  // namespace kvplan::kernels

#endif  // KVPLAN_KERNELS_OVERLAPPING_LAUNCH_H_
