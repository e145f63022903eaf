#include "worker/calibration/calibration_pass.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"

namespace kvplan {

absl::StatusOr<std::vector<std::vector<int32_t>>> CalibrationSequences(
    const std::vector<Prompt>& prompts, const Tokenizer& tokenizer, const ModelConfig& config,
    const CalibrationSettings& settings, std::string_view source) {
  std::vector<std::vector<int32_t>> sequences;
  int64_t budget =
      settings.max_tokens > 0 ? settings.max_tokens : std::numeric_limits<int64_t>::max();
  for (const Prompt& prompt : prompts) {
    if (budget == 0) break;
    std::vector<int32_t> ids;
    if (const std::string* text = prompt.text()) {
      absl::StatusOr<std::vector<int32_t>> encoded = tokenizer.Encode(*text, settings.add_bos);
      if (!encoded.ok()) {
        return absl::Status(encoded.status().code(),
                            absl::StrFormat("%s:%d: %s", source, prompt.line,
                                            std::string(encoded.status().message())));
      }
      ids = *std::move(encoded);
    } else {
      ids = *prompt.ids();
    }
    if (ids.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: the prompt has no tokens", source, prompt.line));
    }
    for (int32_t id : ids) {
      if (id >= config.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s:%d: token id %d is outside the model's vocabulary [0, %d)", source,
                            prompt.line, id, config.vocab_size));
      }
    }
    const int64_t window =
        settings.seq_len > 0 ? settings.seq_len : static_cast<int64_t>(ids.size());
    if (window > config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: the prompt has %d tokens, more than the model's context of %d; pass "
          "--seq-len to split prompts into shorter windows",
          source, prompt.line, window, config.max_position_embeddings));
    }
    for (size_t begin = 0; begin < ids.size() && budget > 0; begin += window) {
      const int64_t len =
          std::min<int64_t>({window, static_cast<int64_t>(ids.size() - begin), budget});
      sequences.emplace_back(ids.begin() + begin, ids.begin() + begin + len);
      budget -= len;
    }
  }
  return sequences;
}

absl::StatusOr<CalibrationResult> RunCalibrationPass(
    const CausalLm& lm, std::vector<std::vector<int32_t>> sequences, int64_t batch,
    const std::function<absl::Status()>& between_batches) {
  if (batch < 1) return absl::InvalidArgumentError(absl::StrFormat("batch %d < 1", batch));
  // Statistics are sums, so order is free: batching sequences of similar length
  // wastes the least compute on padding.
  std::stable_sort(sequences.begin(), sequences.end(),
                   [](const auto& a, const auto& b) { return a.size() < b.size(); });
  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm.config().stats_shape());
  if (!stats.ok()) return stats.status();
  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  for (size_t begin = 0; begin < sequences.size(); begin += static_cast<size_t>(batch)) {
    if (between_batches) {
      if (absl::Status st = between_batches(); !st.ok()) return st;
    }
    const size_t end = std::min(sequences.size(), begin + static_cast<size_t>(batch));
    const absl::Span<const std::vector<int32_t>> slice =
        absl::MakeConstSpan(sequences).subspan(begin, end - begin);
    absl::StatusOr<ForwardResult> result = lm.Forward(slice, {.capture = &*stats});
    if (!result.ok()) return result.status();
    for (const auto& seq : slice) tokens += static_cast<int64_t>(seq.size());
  }
  return CalibrationResult{
      .stats = *std::move(stats),
      .tokens = tokens,
      .sequences = static_cast<int64_t>(sequences.size()),
      .seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

}  // namespace kvplan
