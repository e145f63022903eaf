// KVPLAN_HOST_DEVICE marks the functions that both sides build: the device
// code (nvcc, or NVRTC for the kernels generated per plan) and the host code
// (the launchers, and the CPU tests that check the same arithmetic).
//
// Example:
//   KVPLAN_HOST_DEVICE constexpr int Pad16(int n) { return (n + 15) & ~15; }
#ifndef KVPLAN_KERNELS_HOST_DEVICE_H_
#define KVPLAN_KERNELS_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define KVPLAN_HOST_DEVICE __host__ __device__
#else
#define KVPLAN_HOST_DEVICE
#endif

#endif  // KVPLAN_KERNELS_HOST_DEVICE_H_
