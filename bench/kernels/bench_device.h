// Device helpers of the decode benchmark, callable from plain C++: data fill
// kernels and the fp16 flash-decoding baseline (fp16_flash_decode.cuh).
//
// Example:
//   FillRandomBits(ptr, bytes, /*seed=*/1, stream);
//   LaunchFp16DecodeBaseline(params, /*head_dim=*/128, /*group=*/4, stream);
#ifndef KVPLAN_BENCH_KERNELS_BENCH_DEVICE_H_
#define KVPLAN_BENCH_KERNELS_BENCH_DEVICE_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvplan::bench {

struct Fp16DecodeParams {
  const uint16_t* q = nullptr;  // [batch, kv_heads * group, head_dim] fp16
  const uint16_t* k = nullptr;  // [batch, kv_heads, max_len, head_dim] fp16
  const uint16_t* v = nullptr;  // [batch, kv_heads, max_len, head_dim] fp16
  const int* len = nullptr;     // [batch]
  int max_len = 0;
  int batch = 0;
  int kv_heads = 0;
  int num_splits = 1;
  float scale = 1.0f;
  float* partial_o = nullptr;   // [batch, kv_heads, num_splits, group, head_dim]
  float* partial_ml = nullptr;  // [batch, kv_heads, num_splits, group, 2]
  float* out = nullptr;         // [batch, kv_heads * group, head_dim]
};

// head_dim {64, 128}, group {1, 2, 4, 8}; else cudaErrorInvalidValue.
cudaError_t LaunchFp16DecodeBaseline(const Fp16DecodeParams& p, int head_dim, int group,
                                     cudaStream_t stream);

// Pseudo-random 32-bit words (a hash of the index and seed); bytes % 4 == 0.
cudaError_t FillRandomBits(void* data, size_t bytes, uint64_t seed, cudaStream_t stream);
// N(0,1)-ish fp16 / fp32 values times `scale`.
cudaError_t FillRandomHalf(uint16_t* data, size_t count, uint64_t seed, float scale,
                           cudaStream_t stream);
cudaError_t FillRandomFloat(float* data, size_t count, uint64_t seed, float scale,
                            cudaStream_t stream);
// Overwrites every norm of every (page, kv_head) with a finite fp16 in [0.5, 1.5):
// norm_spans: device [kv_heads][spans_per_head][2] = {byte offset, fp16 count}
// (version-1 pages: K norms, V norms; fragment pages: each tile's norms).
cudaError_t FixPageNorms(uint8_t* pool, int64_t num_pages, int kv_heads, int64_t stride,
                         const int* norm_spans, int spans_per_head, cudaStream_t stream);

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_BENCH_DEVICE_H_
