// Block importance scores: how much a RoPE block's quantization error costs.
//
// The paper scores block i by s_i = ½(E‖q⁽ⁱ⁾‖² + E‖k⁽ⁱ⁾‖²). The logit error of a
// quantized key is ≈ Σ_i ‖q⁽ⁱ⁾‖²‖e⁽ⁱ⁾‖², which points at the product instead, and
// on the reference models the product cut logit error further; both are offered,
// with the one-sided scores for ablations.
//
// Example:
//   absl::StatusOr<ScoreKind> kind = ParseScoreKind("product");
//   std::vector<double> s = BlockScores(mean_q, mean_k, *kind);  // s[i] = q[i]·k[i]
#ifndef KVPLAN_CORE_SCORE_H_
#define KVPLAN_CORE_SCORE_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kvplan {

enum class ScoreKind {
  kSum,      // ½(E‖q⁽ⁱ⁾‖² + E‖k⁽ⁱ⁾‖²), the paper's score.
  kProduct,  // E‖q⁽ⁱ⁾‖² · E‖k⁽ⁱ⁾‖².
  kQ,        // E‖q⁽ⁱ⁾‖² only.
  kK,        // E‖k⁽ⁱ⁾‖² only.
};

// "sum", "product", "q", "k". InvalidArgument naming the choices otherwise.
absl::StatusOr<ScoreKind> ParseScoreKind(std::string_view name);
std::string_view ScoreKindName(ScoreKind kind);

// Per-block scores from mean energies. `mean_q` and `mean_k` must have equal lengths.
std::vector<double> BlockScores(absl::Span<const double> mean_q, absl::Span<const double> mean_k,
                                ScoreKind kind);

}  // namespace kvplan

#endif  // KVPLAN_CORE_SCORE_H_
