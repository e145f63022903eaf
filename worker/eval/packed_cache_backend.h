// Runs a model's attention over a packed KV cache: the AttentionBackend
// (worker/model/attention_backend.h) that stores each layer's K/V in a
// PackedKvCache (core/packed_kv_cache.h) and attends every new query over its
// causal prefix straight from the packed pages. With a cache whose sinks cover
// the whole sequence, the same path keeps K/V in fp16 (the baseline that
// differs from the packed run by quantization alone).
//
// Example:
//   absl::StatusOr<PackedKvCache> cache = PackedKvCache::Create(plan, lm.config().num_heads);
//   PackedCacheBackend backend(*std::move(cache));
//   lm.Forward({prompt}, {.attention = &backend});                       // prefill
//   lm.Forward({{next}}, {.attention = &backend,
//                         .start_position = static_cast<int64_t>(prompt.size())});  // decode
#ifndef KVPLAN_WORKER_EVAL_PACKED_CACHE_BACKEND_H_
#define KVPLAN_WORKER_EVAL_PACKED_CACHE_BACKEND_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "core/packed_kv_cache.h"
#include "worker/model/attention_backend.h"

namespace kvplan {

// Holds one sequence at a time (Reset starts the next). Not thread-safe.
class PackedCacheBackend final : public AttentionBackend {
 public:
  explicit PackedCacheBackend(PackedKvCache cache) : cache_(std::move(cache)) {}

  // FailedPrecondition when `start` is not the number of tokens the cache
  // holds for `layer` (a skipped or repeated chunk); the cache's errors
  // otherwise (shapes, non-finite activations).
  absl::Status Attend(int layer, int64_t start, int tokens, absl::Span<const float> q,
                      absl::Span<const float> k, absl::Span<const float> v,
                      absl::Span<float> out) override;

  // Forgets the sequence.
  void Reset() { cache_.Clear(); }
  const PackedKvCache& cache() const { return cache_; }

 private:
  PackedKvCache cache_;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_EVAL_PACKED_CACHE_BACKEND_H_
