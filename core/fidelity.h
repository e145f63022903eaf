// Fidelity metrics of the paper's diagnostic: what K quantization does to attention.
//
// Kernel MAE (per layer): mean over KV heads, the query heads of each group, tokens
// and relative offsets δ of |q·R_δ k − q·R_δ k̂|, with pre-RoPE q and k, query row
// (t, g) paired with the key of the same token t, raw dot product (no 1/√hd).
// Because RoPE acts per 2-D block, q·R_δ e = Σ_i cos(δθ_i)·(q⁽ⁱ⁾·e⁽ⁱ⁾) +
// sin(δθ_i)·(q⁽ⁱ⁾ × e⁽ⁱ⁾), so each (token, head) costs O(L) per offset.
//
// Attention fidelity: causal softmax attention over one chunk with post-RoPE q, k
// and 1/√hd scaling; KL(p ‖ p̂) and the overlap of the top-10 keys, averaged over
// query rows from `first_query` on (the first rows attend to too few keys to say much).
//
// Layouts: q is [tokens][num_q_heads][head_dim], k and k̂ are
// [tokens][num_kv_heads][head_dim], row-major fp32; query head h reads KV head
// h / (num_q_heads / num_kv_heads).
//
// Example:
//   std::vector<double> offsets = DiagnosticOffsets();      // linspace(-1024, 1024, 50)
//   absl::StatusOr<double> mae = KernelMae(q, k, k_hat, shape, rope, offsets);
#ifndef KVPLAN_CORE_FIDELITY_H_
#define KVPLAN_CORE_FIDELITY_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/rope.h"

namespace kvplan {

struct AttentionShape {
  int tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// `count` offsets evenly spaced over [−max_offset, max_offset] (numpy.linspace).
std::vector<double> DiagnosticOffsets(int count = 50, double max_offset = 1024.0);

// Kernel MAE as above. InvalidArgument on inconsistent shapes or spans.
absl::StatusOr<double> KernelMae(absl::Span<const float> q, absl::Span<const float> k,
                                 absl::Span<const float> k_hat, const AttentionShape& shape,
                                 const RopeSpec& rope, absl::Span<const double> offsets);

struct AttentionFidelity {
  double kl = 0.0;           // Mean KL(p ‖ p̂), nats.
  double top_k_overlap = 0;  // Mean |topk(p) ∩ topk(p̂)| / k, in [0, 1].
  int64_t queries = 0;       // Query rows averaged over (heads × positions).
};

// Causal attention fidelity over one chunk of post-RoPE q, k, k̂.
absl::StatusOr<AttentionFidelity> CausalAttentionFidelity(absl::Span<const float> q,
                                                          absl::Span<const float> k,
                                                          absl::Span<const float> k_hat,
                                                          const AttentionShape& shape,
                                                          int first_query = 16, int top_k = 10);

// The same for several quantized versions of one chunk's keys at once: the
// reference attention is computed once and compared with each. Result i belongs
// to k_hats[i].
absl::StatusOr<std::vector<AttentionFidelity>> CausalAttentionFidelities(
    absl::Span<const float> q, absl::Span<const float> k,
    absl::Span<const absl::Span<const float>> k_hats, const AttentionShape& shape,
    int first_query = 16, int top_k = 10);

}  // namespace kvplan

#endif  // KVPLAN_CORE_FIDELITY_H_
