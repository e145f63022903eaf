#include "bench/kernels/sdpa_baseline.h"

#include <algorithm>
#include <cmath>
#include <vector>

#ifdef KVPLAN_HAVE_TORCH
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>
#endif

namespace kvplan::bench {

#if defined(KVPLAN_HAVE_TORCH) && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5))

bool SdpaAvailable() { return true; }

double SdpaMedianMicros(const void* q, const void* k, const void* v, int batch, int q_heads,
                        int kv_heads, int head_dim, int len, int iters, std::string* error) {
  try {
    const auto options = at::TensorOptions().dtype(at::kHalf).device(at::kCUDA);
    const at::Tensor tq =
        at::from_blob(const_cast<void*>(q), {batch, q_heads, 1, head_dim}, options);
    const at::Tensor tk =
        at::from_blob(const_cast<void*>(k), {batch, kv_heads, len, head_dim}, options);
    const at::Tensor tv =
        at::from_blob(const_cast<void*>(v), {batch, kv_heads, len, head_dim}, options);
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    auto call = [&] {
      return at::scaled_dot_product_attention(tq, tk, tv, /*attn_mask=*/std::nullopt, 0.0,
                                              /*is_causal=*/false, scale, /*enable_gqa=*/true);
    };
    for (int i = 0; i < 3; ++i) call();
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);
    std::vector<float> times;
    for (int i = 0; i < iters; ++i) {
      cudaEventRecord(start, 0);
      call();
      cudaEventRecord(stop, 0);
      cudaEventSynchronize(stop);
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, start, stop);
      times.push_back(ms * 1000.0f);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  } catch (const std::exception& e) {
    *error = e.what();
    return -1.0;
  }
}

#else

bool SdpaAvailable() { return false; }

double SdpaMedianMicros(const void*, const void*, const void*, int, int, int, int, int, int,
                        std::string* error) {
  *error = "built without LibTorch >= 2.5";
  return -1.0;
}

#endif

}  // namespace kvplan::bench
