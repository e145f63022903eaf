// The LibTorch baseline of the decode benchmark: fp16 decode attention through
// at::scaled_dot_product_attention with enable_gqa (no repeated K/V). Kept in
// its own translation unit so that only it includes Torch.
//
// Example:
//   double us = SdpaMedianMicros(q, k, v, batch, 32, 8, 128, len, 20);
#ifndef KVPLAN_BENCH_KERNELS_SDPA_BASELINE_H_
#define KVPLAN_BENCH_KERNELS_SDPA_BASELINE_H_

#include <string>

namespace kvplan::bench {

// True when this build has LibTorch with enable_gqa (PyTorch >= 2.5).
bool SdpaAvailable();
// Median µs of `iters` calls (after warm-up) on the default stream. q: [batch,
// q_heads, 1, head_dim] fp16; k, v: [batch, kv_heads, len, head_dim] fp16,
// device pointers. Returns a negative value (and fills *error) on failure.
double SdpaMedianMicros(const void* q, const void* k, const void* v, int batch, int q_heads,
                        int kv_heads, int head_dim, int len, int iters, std::string* error);

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_SDPA_BASELINE_H_
