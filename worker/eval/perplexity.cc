#include "worker/eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "worker/eval/packed_cache_backend.h"

namespace kvplan {
namespace {

// −log softmax(logits)[target], in fp64.
double NextTokenNll(absl::Span<const float> logits, int32_t target) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - top);
  return top + std::log(sum) - static_cast<double>(logits[target]);
}

}  // namespace

absl::StatusOr<PerplexityResult> MeasurePerplexity(const CausalLm& lm, const KvPlan& plan,
                                                   absl::Span<const std::vector<int32_t>> windows,
                                                   const PerplexityOptions& options) {
  const ModelConfig& config = lm.config();
  if (plan.num_layers != config.num_layers || plan.num_kv_heads != config.num_kv_heads ||
      plan.head_dim != config.head_dim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the plan is for %d layers x %d KV heads of head_dim %d but the model has %d x %d of %d",
        plan.num_layers, plan.num_kv_heads, plan.head_dim, config.num_layers, config.num_kv_heads,
        config.head_dim));
  }
  if (windows.empty()) return absl::InvalidArgumentError("no windows to score");
  if (options.prefill_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("prefill_tokens must be >= 1, got %d", options.prefill_tokens));
  }
  for (size_t w = 0; w < windows.size(); ++w) {
    if (windows[w].size() < 2) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "window %d has %d tokens; scoring needs at least 2", w, windows[w].size()));
    }
  }
  absl::StatusOr<PackedKvCache> cache =
      PackedKvCache::Create(plan, config.num_heads, options.cache);
  if (!cache.ok()) return cache.status();
  PackedCacheBackend backend(*std::move(cache));

  PerplexityResult result;
  double total_nll = 0.0;
  for (const std::vector<int32_t>& window : windows) {
    backend.Reset();
    const int64_t n = static_cast<int64_t>(window.size());
    const int64_t prefill = std::min<int64_t>(options.prefill_tokens, n);
    const std::vector<int32_t> head(window.begin(), window.begin() + prefill);
    absl::StatusOr<ForwardResult> first =
        lm.Forward({head}, {.compute_nll = true, .attention = &backend});
    if (!first.ok()) return first.status();
    if (prefill > 1) total_nll += first->mean_nll[0] * static_cast<double>(prefill - 1);
    std::vector<float> logits = std::move(first->last_logits[0]);
    for (int64_t t = prefill; t < n; ++t) {
      total_nll += NextTokenNll(logits, window[t]);
      if (t + 1 == n) break;  // The last token predicts nothing scored.
      const std::vector<int32_t> token = {window[t]};
      absl::StatusOr<ForwardResult> step =
          lm.Forward({token}, {.attention = &backend, .start_position = t});
      if (!step.ok()) return step.status();
      logits = std::move(step->last_logits[0]);
    }
    result.tokens_scored += n - 1;
    ++result.windows;
  }
  result.mean_nll = total_nll / static_cast<double>(result.tokens_scored);
  result.perplexity = std::exp(result.mean_nll);
  return result;
}

}  // namespace kvplan
