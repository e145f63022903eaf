// The LibTorch baseline of the decode benchmark: fp16 decode attention through
// at::scaled_dot_product_attention with enable_gqa (no repeated K/V). Kept in
// its own translation unit so that only it includes Torch.
//
// Example:
//   double us = SdpaMedianMicros({q, k, v, batch, 32, 8, 128, len, replicas}, 20, 0, 0, &error);
#ifndef KVPLAN_BENCH_KERNELS_SDPA_BASELINE_H_
#define KVPLAN_BENCH_KERNELS_SDPA_BASELINE_H_

#include <string>

namespace kvplan::bench {

// One decode shape, device pointers. q: [batch, q_heads, 1, head_dim] fp16;
// k, v: `replicas` replicas back to back, each [batch, kv_heads, len, head_dim]
// fp16.
struct SdpaCase {
  const void* q;
  const void* k;
  const void* v;
  int batch, q_heads, kv_heads, head_dim, len;
  int replicas;
};

// True when this build has LibTorch with enable_gqa (PyTorch >= 2.5).
bool SdpaAvailable();
// Median µs of one call over `iters` samples; call i reads K/V replica i mod
// replicas. graph_steps 0: a sample is one call (after warm-up) on the current
// stream; > 0: a sample is one replay of an at::cuda::CUDAGraph of graph_steps
// calls, divided by graph_steps. settle_ms: untimed samples first
// (event_median.h). A negative value (and *error filled) on failure.
double SdpaMedianMicros(const SdpaCase& c, int iters, int graph_steps, double settle_ms,
                        std::string* error);

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_SDPA_BASELINE_H_
