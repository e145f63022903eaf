// What one transformer layer's prefill costs in fp16 through LibTorch, the
// yardstick for the encode + pack of the same tokens: a prefill encodes each
// token's K and V once, so the encode matters to a serving node only as a
// share of the layer it follows. Kept in its own translation unit so that only
// it includes Torch.
//
// Example:
//   PrefillMicros us = PrefillLayerMicros({32, 8, 128, 4096, 14336, 32768}, 5, 0, &error);
#ifndef KVPLAN_BENCH_KERNELS_PREFILL_BASELINE_H_
#define KVPLAN_BENCH_KERNELS_PREFILL_BASELINE_H_

#include <string>

namespace kvplan::bench {

// One sequence of `tokens` tokens through one layer of a model of these
// shapes (hidden = the residual width, intermediate = the MLP's).
struct PrefillCase {
  int q_heads, kv_heads, head_dim, hidden, intermediate, tokens;
};

// Median µs of the layer's two big parts, each timed alone. attention: causal
// at::scaled_dot_product_attention over [1, q_heads, tokens, head_dim] with K
// and V repeated to q_heads (so that it runs a flash kernel in every LibTorch
// version); gemms: the four projections (QKV, O, MLP gate + up, down) as
// at::mm. Norms, RoPE and activations are left out: the sum is a lower
// bound on the layer. Negative values (and *error filled) on failure or
// without LibTorch >= 2.5.
struct PrefillMicros {
  double attention = -1.0, gemms = -1.0;
  // Attention FLOPs per second (causal: half of 4·tokens²·head_dim per query
  // head), so that a reader can tell a flash kernel from a slow fallback.
  double attention_tflops = 0.0;
};
PrefillMicros PrefillLayerMicros(const PrefillCase& c, int iters, double settle_ms,
                                 std::string* error);

}  // namespace kvplan::bench

#endif  // KVPLAN_BENCH_KERNELS_PREFILL_BASELINE_H_
