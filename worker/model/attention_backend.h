// Attention over a cache the model does not own, e.g. a packed KV cache
// (core/packed_kv_cache.h): CausalLm::Forward hands each layer's post-RoPE
// q, k, v of the new positions to the backend, which appends k and v to its
// cache and returns the attention output. So a prefill chunk and a decode step
// are the same call, and the backend decides how K/V are stored and read.
//
// Torch-free: the tensors cross as host fp32 spans.
//
// Example (a backend that keeps K/V in a PackedKvCache):
//   class PackedBackend final : public AttentionBackend {
//     absl::Status Attend(int layer, int64_t start, int tokens, ...) override {
//       cache_.Append(layer, k, v);
//       for (int i = 0; i < tokens; ++i) cache_.Attend(layer, q_i, start + i + 1, out_i);
//     }
//   };
#ifndef KVPLAN_WORKER_MODEL_ATTENTION_BACKEND_H_
#define KVPLAN_WORKER_MODEL_ATTENTION_BACKEND_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace kvplan {

class AttentionBackend {
 public:
  virtual ~AttentionBackend() = default;

  // One layer of one forward pass over positions [start, start + tokens) of
  // one sequence; layers arrive in order. The backend's cache holds the
  // sequence's first `start` tokens of `layer` when called. Spans, host fp32,
  // row-major:
  //   q   [tokens][num_q_heads][head_dim], post-RoPE (query head h reads KV
  //       head h / group, as in the model)
  //   k   [tokens][num_kv_heads][head_dim], post-RoPE
  //   v   [tokens][num_kv_heads][head_dim]
  //   out [tokens][num_q_heads][head_dim]: softmax(scale·q·kᵀ)·v of query i
  //       over the cached tokens at positions <= start + i (causal), with
  //       scale 1/√head_dim.
  // A non-OK status aborts the forward pass and is returned by it.
  virtual absl::Status Attend(int layer, int64_t start, int tokens, absl::Span<const float> q,
                              absl::Span<const float> k, absl::Span<const float> v,
                              absl::Span<float> out) = 0;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_ATTENTION_BACKEND_H_
