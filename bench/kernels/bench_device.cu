#include <cuda_fp16.h>

#include "bench/kernels/bench_device.h"
#include "bench/kernels/fp16_flash_decode.cuh"

namespace kvplan::bench {
namespace {

__device__ __forceinline__ uint32_t Hash(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>(x ^ (x >> 31));
}

// Sum of four uniforms, centred and scaled: close enough to N(0,1) for timing.
__device__ __forceinline__ float Gaussianish(uint64_t i, uint64_t seed) {
  float s = 0.0f;
  for (int k = 0; k < 4; ++k) s += Hash(i * 4 + k + seed * 0x100000001b3ull) * 2.3283064e-10f;
  return (s - 2.0f) * 1.7320508f;
}

__global__ void FillBitsKernel(uint32_t* d, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    d[i] = Hash(i ^ (seed << 40));
  }
}
__global__ void FillHalfKernel(uint16_t* d, size_t n, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    d[i] = __half_as_ushort(__float2half_rn(scale * Gaussianish(i, seed)));
  }
}
__global__ void FillFloatKernel(float* d, size_t n, uint64_t seed, float scale) {
  for (size_t i = blockIdx.x * size_t{blockDim.x} + threadIdx.x; i < n;
       i += size_t{gridDim.x} * blockDim.x) {
    d[i] = scale * Gaussianish(i, seed);
  }
}
__global__ void FixNormsKernel(uint8_t* pool, int64_t units, int kv_heads, int64_t stride,
                               const int* spans, int spans_per_head) {
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) {
    const int h = static_cast<int>(u % kv_heads);
    uint16_t* page = reinterpret_cast<uint16_t*>(pool + u * stride);
    for (int s = 0; s < spans_per_head; ++s) {
      const int* span = spans + (h * spans_per_head + s) * 2;
      const int off = span[0], count = span[1];
      for (int i = threadIdx.x; i < count; i += blockDim.x) {
        page[off / 2 + i] =
            __half_as_ushort(__float2half_rn(0.5f + (Hash(u * 977 + i) >> 8) * 5.96e-8f));
      }
    }
  }
}

}  // namespace

cudaError_t LaunchFp16DecodeBaseline(const Fp16DecodeParams& p, int head_dim, int group,
                                     cudaStream_t stream) {
  switch (head_dim * 100 + group) {
    case 6401:
      return LaunchFp16Decode<64, 1>(p, stream);
    case 6402:
      return LaunchFp16Decode<64, 2>(p, stream);
    case 6404:
      return LaunchFp16Decode<64, 4>(p, stream);
    case 6408:
      return LaunchFp16Decode<64, 8>(p, stream);
    case 12801:
      return LaunchFp16Decode<128, 1>(p, stream);
    case 12802:
      return LaunchFp16Decode<128, 2>(p, stream);
    case 12804:
      return LaunchFp16Decode<128, 4>(p, stream);
    case 12808:
      return LaunchFp16Decode<128, 8>(p, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t FillRandomBits(void* data, size_t bytes, uint64_t seed, cudaStream_t stream) {
  FillBitsKernel<<<4096, 256, 0, stream>>>(static_cast<uint32_t*>(data), bytes / 4, seed);
  return cudaGetLastError();
}
cudaError_t FillRandomHalf(uint16_t* data, size_t count, uint64_t seed, float scale,
                           cudaStream_t stream) {
  FillHalfKernel<<<4096, 256, 0, stream>>>(data, count, seed, scale);
  return cudaGetLastError();
}
cudaError_t FillRandomFloat(float* data, size_t count, uint64_t seed, float scale,
                            cudaStream_t stream) {
  FillFloatKernel<<<4096, 256, 0, stream>>>(data, count, seed, scale);
  return cudaGetLastError();
}
cudaError_t FixPageNorms(uint8_t* pool, int64_t num_pages, int kv_heads, int64_t stride,
                         const int* norm_spans, int spans_per_head, cudaStream_t stream) {
  FixNormsKernel<<<8192, 128, 0, stream>>>(pool, num_pages * kv_heads, kv_heads, stride, norm_spans,
                                           spans_per_head);
  return cudaGetLastError();
}

}  // namespace kvplan::bench
