// The paper's fidelity diagnostic: what K-only quantization does to each layer.
//
// Calibration statistics choose the allocations; test activations are then
// quantized with uniform TQ-MSE and with Block-GTQ (paper `sum` score and the
// `product` score) at each budget, and compared with the exact keys:
//   - kernel MAE over relative offsets (core/fidelity.h), pre-RoPE q and k;
//   - softmax KL and top-10 overlap of causal attention inside each chunk,
//     with RoPE applied at chunk-local positions, queries from position 16.
// A layer is a "win" at a budget when Block-GTQ's MAE is below TQ-MSE's.
//
// CreateForPlan measures one given plan instead (validation of a stored plan,
// `kvplan-worker validate`): its allocation in the kBlockGtq slot against
// uniform TQ-MSE at the plan's K budget and rotation seed in the kTqMse slot.
//
// The diagnostic streams: activations arrive one layer at a time and only the
// per-layer results are kept, so a large model never holds all of them.
//
// Example:
//   absl::StatusOr<FidelityDiagnostic> diag = FidelityDiagnostic::Create(calib, rope, 6, {});
//   for (int l = 0; l < layers; ++l) diag->AddLayer(l, q[l], k[l], /*tokens=*/2048);
//   absl::StatusOr<std::vector<BudgetFidelity>> report = diag->Finish();
#ifndef KVPLAN_WORKER_EVAL_FIDELITY_DIAGNOSTIC_H_
#define KVPLAN_WORKER_EVAL_FIDELITY_DIAGNOSTIC_H_

#include <map>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/block_stats.h"
#include "core/grouped_quantizer.h"
#include "core/plan.h"
#include "core/rope.h"

namespace kvplan {

struct DiagnosticOptions {
  // K budgets (bits per dimension). Default: 2, 3, 4.
  std::vector<int> bits = {2, 3, 4};
  // Tokens per independent forward; attention is causal inside a chunk and
  // positions restart at 0 in each. Default: 256.
  int chunk_tokens = 256;
  // First query position scored by KL/top-k. Default: 16.
  int first_query = 16;
  int top_k = 10;
  // Relative offsets of the kernel MAE. Default: 50 in [-1024, 1024].
  std::vector<double> offsets;
  // Seed of the Haar rotations (core/plan.h). Default: the plan default.
  std::optional<uint64_t> rotation_seed;
};

// Quantizer families compared.
enum class KMethod { kTqMse = 0, kBlockGtq = 1, kBlockGtqProduct = 2 };
inline constexpr int kNumKMethods = 3;

struct LayerFidelity {
  int layer = 0;
  // Indexed by KMethod.
  double mae[kNumKMethods] = {};
  double kl[kNumKMethods] = {};
  double top_k[kNumKMethods] = {};
};

struct BudgetFidelity {
  int bits = 0;
  std::vector<LayerFidelity> layers;
  // Layers where Block-GTQ (sum score) has lower MAE than TQ-MSE.
  int wins = 0;
  // Mean over layers of 1 − mae_bgt/mae_tq, for the sum and product scores.
  double mae_reduction_mean = 0.0;
  double mae_reduction_mean_product = 0.0;
};

class FidelityDiagnostic {
 public:
  // `calib`: merged statistics of the calibration tokens; `num_q_heads` the
  // model's query heads. InvalidArgument for inconsistent shapes or options.
  static absl::StatusOr<FidelityDiagnostic> Create(const BlockStats& calib, const RopeSpec& rope,
                                                   int num_q_heads, DiagnosticOptions options);

  // One budget: `plan`'s K allocation (reported as kBlockGtq) against uniform
  // TQ-MSE at plan.options.k_bits with the plan's rotation seed (kTqMse); the
  // kBlockGtqProduct entries stay 0. options.bits and rotation_seed are
  // ignored; the report's `bits` is ⌊k_bits⌋ (read the plan for fractional
  // budgets). InvalidArgument when num_q_heads is not a multiple of the plan's
  // KV heads or the options are inconsistent.
  static absl::StatusOr<FidelityDiagnostic> CreateForPlan(const KvPlan& plan, int num_q_heads,
                                                          DiagnosticOptions options);

  // One layer of test activations, pre-RoPE and chunk-major:
  // q [tokens][num_q_heads][head_dim], k [tokens][num_kv_heads][head_dim], with
  // tokens a multiple of chunk_tokens. Each layer once.
  absl::Status AddLayer(int layer, absl::Span<const float> q, absl::Span<const float> k,
                        int tokens);

  // One entry per budget, layers in order. FailedPrecondition if a layer is missing.
  absl::StatusOr<std::vector<BudgetFidelity>> Finish() const;

 private:
  FidelityDiagnostic() = default;

  RopeSpec rope_;
  StatsShape shape_;
  int num_q_heads_ = 0;
  DiagnosticOptions options_;
  // [budget][method][layer * kv_heads + head]; empty for a method not measured.
  std::vector<std::vector<std::vector<GroupedQuantizer>>> quantizers_;
  // [budget] -> layer -> results
  std::vector<std::map<int, LayerFidelity>> results_;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_EVAL_FIDELITY_DIAGNOSTIC_H_
