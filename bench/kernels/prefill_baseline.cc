#include "bench/kernels/prefill_baseline.h"

#include <cmath>
#include <utility>
#include <vector>

#include "bench/kernels/event_median.h"

#ifdef KVPLAN_HAVE_TORCH
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define KVPLAN_HAVE_PREFILL_BASELINE 1
// Only a CUDA build of LibTorch >= 2.5 is used, as for the SDPA decode baseline.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif
#endif

namespace kvplan::bench {

#ifdef KVPLAN_HAVE_PREFILL_BASELINE

PrefillMicros PrefillLayerMicros(const PrefillCase& c, int iters, double settle_ms,
                                 std::string* error) {
  PrefillMicros us;
  try {
    const auto options = at::TensorOptions().dtype(at::kHalf).device(at::kCUDA);
    const int64_t t = c.tokens, d = c.head_dim;
    const at::Tensor q = at::randn({1, c.q_heads, t, d}, options);
    const int group = c.q_heads / c.kv_heads;
    const at::Tensor k = at::randn({1, c.kv_heads, t, d}, options).repeat_interleave(group, 1);
    const at::Tensor v = at::randn({1, c.kv_heads, t, d}, options).repeat_interleave(group, 1);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    auto attention = [&](int) {
      at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/std::nullopt, 0.0,
                                       /*is_causal=*/true, scale);
    };
    // x·W for each projection; W stored [in, out] (the layout only changes
    // which GEMM kernel LibTorch picks, not the FLOPs).
    const int64_t qkv = int64_t{c.q_heads + 2 * c.kv_heads} * d;
    const at::Tensor x = at::randn({t, c.hidden}, options);
    const at::Tensor mlp_in = at::randn({t, c.intermediate}, options);
    const std::vector<std::pair<const at::Tensor*, at::Tensor>> projections = {
        {&x, at::randn({c.hidden, qkv}, options)},
        {&x, at::randn({c.hidden, c.hidden}, options)},
        {&x, at::randn({c.hidden, 2 * int64_t{c.intermediate}}, options)},
        {&mlp_in, at::randn({c.intermediate, c.hidden}, options)}};
    auto gemms = [&](int) {
      for (const auto& [in, w] : projections) at::mm(*in, w);
    };
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
    cudaDeviceSynchronize();  // the inputs' fills
    for (int i = 0; i < 2; ++i) {
      attention(i);
      gemms(i);
    }
    cudaDeviceSynchronize();  // the warm-up calls, out of the first sample
    us.attention = MedianEventMicros(stream, iters, 1, attention, settle_ms);
    us.gemms = MedianEventMicros(stream, iters, 1, gemms, settle_ms);
    const double flops = 2.0 * static_cast<double>(t) * t * d * c.q_heads;  // 4·t²·d / 2
    us.attention_tflops = flops / (us.attention * 1e-6) / 1e12;
  } catch (const std::exception& e) {
    *error = e.what();
    us = PrefillMicros{};
  }
  // The layer's buffers (GBs at 32K tokens) back to the device, not kept in
  // LibTorch's cache where the benchmark's own cudaMalloc cannot reach them.
  c10::cuda::CUDACachingAllocator::emptyCache();
  return us;
}

#else

PrefillMicros PrefillLayerMicros(const PrefillCase&, int, double, std::string* error) {
  *error = "built without LibTorch >= 2.5";
  return PrefillMicros{};
}

#endif

}  // namespace kvplan::bench
