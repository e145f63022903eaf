#include "bench/kernels/sdpa_baseline.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "bench/kernels/event_median.h"

#ifdef KVPLAN_HAVE_TORCH
#include <ATen/ATen.h>
#include <cuda_runtime_api.h>
#include <torch/version.h>
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define KVPLAN_HAVE_SDPA_GQA 1
// Only a CUDA build of LibTorch >= 2.5 is used (Debian's 1.13 lacks these).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif
#endif

namespace kvplan::bench {

#ifdef KVPLAN_HAVE_SDPA_GQA

bool SdpaAvailable() { return true; }

double SdpaMedianMicros(const SdpaCase& c, int iters, int graph_steps, double settle_ms,
                        std::string* error) {
  try {
    const auto options = at::TensorOptions().dtype(at::kHalf).device(at::kCUDA);
    const at::Tensor tq =
        at::from_blob(const_cast<void*>(c.q), {c.batch, c.q_heads, 1, c.head_dim}, options);
    const int64_t replica = int64_t{c.batch} * c.kv_heads * c.len * c.head_dim;
    std::vector<at::Tensor> tk, tv;
    for (int r = 0; r < std::max(1, c.replicas); ++r) {
      const auto* k = static_cast<const at::Half*>(c.k) + r * replica;
      const auto* v = static_cast<const at::Half*>(c.v) + r * replica;
      tk.push_back(at::from_blob(const_cast<at::Half*>(k), {c.batch, c.kv_heads, c.len, c.head_dim},
                                 options));
      tv.push_back(at::from_blob(const_cast<at::Half*>(v), {c.batch, c.kv_heads, c.len, c.head_dim},
                                 options));
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    auto call = [&](int i) {
      const size_t r = static_cast<size_t>(i) % tk.size();
      return at::scaled_dot_product_attention(tq, tk[r], tv[r], /*attn_mask=*/std::nullopt, 0.0,
                                              /*is_causal=*/false, scale, /*enable_gqa=*/true);
    };
    cudaDeviceSynchronize();  // the inputs' fills, on whatever stream they ran
    for (int i = 0; i < 3; ++i) call(i);
    cudaDeviceSynchronize();  // the warm-up calls, out of the first sample
    if (graph_steps <= 0) {
      return MedianEventMicros(
          at::cuda::getCurrentCUDAStream().stream(), iters, 1, [&](int i) { call(i); }, settle_ms);
    }
    // Captured on a side stream, as CUDAGraph requires; its private memory
    // pool keeps the outputs alive for the replays.
    const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    const c10::cuda::CUDAStreamGuard guard(side);
    at::cuda::CUDAGraph graph;
    graph.capture_begin();
    for (int i = 0; i < graph_steps; ++i) call(i);
    graph.capture_end();
    for (int i = 0; i < 2; ++i) graph.replay();
    cudaStreamSynchronize(side.stream());
    return MedianEventMicros(
        side.stream(), iters, graph_steps, [&](int) { graph.replay(); }, settle_ms);
  } catch (const std::exception& e) {
    *error = e.what();
    return -1.0;
  }
}

#else

bool SdpaAvailable() { return false; }

double SdpaMedianMicros(const SdpaCase&, int, int, double, std::string* error) {
  *error = "built without LibTorch >= 2.5";
  return -1.0;
}

#endif

}  // namespace kvplan::bench
