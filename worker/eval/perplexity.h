// Teacher-forced perplexity with every layer's K/V written to and read from a
// packed KV cache (core/packed_kv_cache.h), prefill and decode alike.
//
// Each window is one sequence from position 0: its first prefill_tokens
// tokens go through the model as one Forward (causal attention over the
// cache), then every further token is one decode step (a one-token Forward
// continuing the sequence). Every next-token prediction inside the window is
// scored: a window of n tokens scores n - 1.
//
// Example:
//   absl::StatusOr<PerplexityResult> r =
//       MeasurePerplexity(lm, plan, windows, {.prefill_tokens = 128});
//   // r->perplexity == exp(r->mean_nll)
#ifndef KVPLAN_WORKER_EVAL_PERPLEXITY_H_
#define KVPLAN_WORKER_EVAL_PERPLEXITY_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/packed_kv_cache.h"
#include "core/plan.h"
#include "worker/model/transformer.h"

namespace kvplan {

struct PerplexityOptions {
  // Tokens of each window run as one prefill chunk, at least 1; the rest are
  // decode steps. Values past a window's length prefill the whole window.
  // Default: 1 (decode only).
  int prefill_tokens = 1;
  // The cache's sinks, recent window and split (packed_kv_cache.h).
  PackedKvCacheOptions cache;
};

// Cache options that keep every token in fp16: the unquantized baseline on
// the same code path.
inline PackedKvCacheOptions Fp16CacheOptions() {
  return {.sink_tokens = std::numeric_limits<int>::max()};
}

struct PerplexityResult {
  int64_t windows = 0;
  int64_t tokens_scored = 0;
  // Mean next-token negative log-likelihood, nats.
  double mean_nll = 0.0;
  double perplexity = 0.0;
};

// Runs every window of `windows` (token ids, each at least 2 long) through
// `lm` over a cache built from `plan`. Errors: InvalidArgument for no
// windows, a window shorter than 2 tokens, prefill_tokens < 1, or a plan whose
// shape (layers, KV heads, head_dim) is not the model's (both named); the
// model's and the cache's errors otherwise.
absl::StatusOr<PerplexityResult> MeasurePerplexity(const CausalLm& lm, const KvPlan& plan,
                                                   absl::Span<const std::vector<int32_t>> windows,
                                                   const PerplexityOptions& options);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_EVAL_PERPLEXITY_H_
