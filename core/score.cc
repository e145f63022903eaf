#include "core/score.h"

#include <string>

#include "absl/strings/str_format.h"

namespace kvplan {

absl::StatusOr<ScoreKind> ParseScoreKind(std::string_view name) {
  if (name == "sum") return ScoreKind::kSum;
  if (name == "product") return ScoreKind::kProduct;
  if (name == "q") return ScoreKind::kQ;
  if (name == "k") return ScoreKind::kK;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown score '%s'; choose one of: sum, product, q, k", name));
}

std::string_view ScoreKindName(ScoreKind kind) {
  switch (kind) {
    case ScoreKind::kSum:
      return "sum";
    case ScoreKind::kProduct:
      return "product";
    case ScoreKind::kQ:
      return "q";
    case ScoreKind::kK:
      return "k";
  }
  return "unknown";
}

std::vector<double> BlockScores(absl::Span<const double> mean_q, absl::Span<const double> mean_k,
                                ScoreKind kind) {
  std::vector<double> scores(mean_q.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    switch (kind) {
      case ScoreKind::kSum:
        scores[i] = 0.5 * (mean_q[i] + mean_k[i]);
        break;
      case ScoreKind::kProduct:
        scores[i] = mean_q[i] * mean_k[i];
        break;
      case ScoreKind::kQ:
        scores[i] = mean_q[i];
        break;
      case ScoreKind::kK:
        scores[i] = mean_k[i];
        break;
    }
  }
  return scores;
}

}  // namespace kvplan
