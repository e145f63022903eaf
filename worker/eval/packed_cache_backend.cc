#include "worker/eval/packed_cache_backend.h"

#include "absl/strings/str_format.h"

namespace kvplan {

absl::Status PackedCacheBackend::Attend(int layer, int64_t start, int tokens,
                                        absl::Span<const float> q, absl::Span<const float> k,
                                        absl::Span<const float> v, absl::Span<float> out) {
  if (start != cache_.num_tokens(layer)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the packed cache holds %d tokens of layer %d but the forward pass starts at position "
        "%d; continue the sequence where it ends or Reset for a new one",
        cache_.num_tokens(layer), layer, start));
  }
  const size_t row = static_cast<size_t>(cache_.num_q_heads()) * cache_.head_dim();
  if (tokens < 1 || q.size() != row * tokens || out.size() != row * tokens) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "q has %d and out %d values; [%d tokens][%d query heads][%d head_dim] expected", q.size(),
        out.size(), tokens, cache_.num_q_heads(), cache_.head_dim()));
  }
  if (absl::Status s = cache_.Append(layer, k, v); !s.ok()) return s;
  for (int i = 0; i < tokens; ++i) {
    absl::Status s =
        cache_.Attend(layer, q.subspan(i * row, row), start + i + 1, out.subspan(i * row, row));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace kvplan
