#include "worker/eval/fidelity_diagnostic.h"

#include "absl/strings/str_format.h"
#include "core/energy_table.h"
#include "core/fidelity.h"
#include "core/plan.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

PlanOptions MethodOptions(KMethod method, int bits, std::optional<uint64_t> seed) {
  PlanOptions options{.k_bits = static_cast<double>(bits), .v_bits = bits};
  if (seed.has_value()) options.rotation_seed = *seed;
  switch (method) {
    case KMethod::kTqMse:
      options.k_scheme = KScheme::kUniform;
      break;
    case KMethod::kBlockGtq:
      options.score = ScoreKind::kSum;
      break;
    case KMethod::kBlockGtqProduct:
      options.score = ScoreKind::kProduct;
      break;
  }
  return options;
}

// One quantizer per head of `plan`, with the plan's rotations.
absl::StatusOr<std::vector<GroupedQuantizer>> HeadQuantizers(const KvPlan& plan) {
  absl::StatusOr<std::map<int, Rotation>> rotations = PlanRotations(plan);
  if (!rotations.ok()) return rotations.status();
  std::vector<GroupedQuantizer> quantizers;
  for (int l = 0; l < plan.num_layers; ++l) {
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      absl::StatusOr<GroupLayout> layout = plan.KLayout(l, h);
      if (!layout.ok()) return layout.status();
      std::vector<Rotation> group_rotations;
      for (const QuantGroup& g : layout->groups) group_rotations.push_back(rotations->at(g.size));
      absl::StatusOr<GroupedQuantizer> q =
          GroupedQuantizer::Create(*std::move(layout), group_rotations);
      if (!q.ok()) return q.status();
      quantizers.push_back(*std::move(q));
    }
  }
  return quantizers;
}

// Applies RoPE in place to [tokens][heads][head_dim] at chunk-local positions.
void RotateChunk(const RopeRotator& rope, int tokens, int heads, int head_dim, float* x) {
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      rope.Apply(t, absl::MakeSpan(x + (static_cast<size_t>(t) * heads + h) * head_dim, head_dim));
    }
  }
}

}  // namespace

absl::StatusOr<FidelityDiagnostic> FidelityDiagnostic::Create(const BlockStats& calib,
                                                              const RopeSpec& rope, int num_q_heads,
                                                              DiagnosticOptions options) {
  const StatsShape& shape = calib.shape();
  if (num_q_heads != shape.num_kv_heads * shape.group_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d query heads do not match the statistics' %d KV heads x group %d",
                        num_q_heads, shape.num_kv_heads, shape.group_size));
  }
  if (options.bits.empty() || options.chunk_tokens <= options.first_query) {
    return absl::InvalidArgumentError(
        "the diagnostic needs at least one budget and chunks longer than first_query");
  }
  if (options.offsets.empty()) options.offsets = DiagnosticOffsets();
  absl::StatusOr<EnergyTable> table = EnergyTableFromStats(calib);
  if (!table.ok()) return table.status();

  FidelityDiagnostic diag;
  diag.rope_ = rope;
  diag.shape_ = shape;
  diag.num_q_heads_ = num_q_heads;
  diag.options_ = options;
  for (int bits : options.bits) {
    std::vector<std::vector<GroupedQuantizer>> methods;
    for (int m = 0; m < kNumKMethods; ++m) {
      absl::StatusOr<KvPlan> plan = BuildPlan(
          *table, rope, MethodOptions(static_cast<KMethod>(m), bits, options.rotation_seed));
      if (!plan.ok()) return plan.status();
      absl::StatusOr<std::vector<GroupedQuantizer>> q = HeadQuantizers(*plan);
      if (!q.ok()) return q.status();
      methods.push_back(*std::move(q));
    }
    diag.quantizers_.push_back(std::move(methods));
  }
  diag.results_.resize(options.bits.size());
  return diag;
}

absl::StatusOr<FidelityDiagnostic> FidelityDiagnostic::CreateForPlan(const KvPlan& plan,
                                                                     int num_q_heads,
                                                                     DiagnosticOptions options) {
  if (plan.num_kv_heads <= 0 || num_q_heads % plan.num_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%d query heads are not a multiple of the plan's %d KV heads", num_q_heads,
                        plan.num_kv_heads));
  }
  if (options.chunk_tokens <= options.first_query) {
    return absl::InvalidArgumentError("the diagnostic needs chunks longer than first_query");
  }
  if (options.offsets.empty()) options.offsets = DiagnosticOffsets();
  // Uniform allocation reads no statistics: scores of the right shape do.
  nlohmann::json scores = nlohmann::json::object();
  for (int l = 0; l < plan.num_layers; ++l) {
    for (int h = 0; h < plan.num_kv_heads; ++h) {
      scores[absl::StrFormat("%d.%d", l, h)] = std::vector<double>(plan.head_dim / 2, 1.0);
    }
  }
  absl::StatusOr<EnergyTable> table = EnergyTableFromJson(scores);
  if (!table.ok()) return table.status();
  // The plan's options, exempt layers included: those layers are then
  // identical in both methods, and the comparison is at the same budget.
  PlanOptions uniform_options = plan.options;
  uniform_options.k_scheme = KScheme::kUniform;
  // Uniform K is one group per head: the plan's K alignment has nothing to align.
  uniform_options.k_group_align = 0;
  absl::StatusOr<KvPlan> uniform = BuildPlan(*table, plan.rope, uniform_options);
  if (!uniform.ok()) return uniform.status();

  FidelityDiagnostic diag;
  diag.rope_ = plan.rope;
  diag.shape_ = {.num_layers = plan.num_layers,
                 .num_kv_heads = plan.num_kv_heads,
                 .num_blocks = plan.head_dim / 2,
                 .group_size = num_q_heads / plan.num_kv_heads};
  diag.num_q_heads_ = num_q_heads;
  options.bits = {static_cast<int>(plan.options.k_bits)};
  options.rotation_seed = plan.options.rotation_seed;
  diag.options_ = options;
  std::vector<std::vector<GroupedQuantizer>> methods(kNumKMethods);
  const KvPlan& baseline = *uniform;
  for (const auto& [method, p] :
       {std::pair{KMethod::kTqMse, &baseline}, std::pair{KMethod::kBlockGtq, &plan}}) {
    absl::StatusOr<std::vector<GroupedQuantizer>> q = HeadQuantizers(*p);
    if (!q.ok()) return q.status();
    methods[static_cast<int>(method)] = *std::move(q);
  }
  diag.quantizers_.push_back(std::move(methods));
  diag.results_.resize(1);
  return diag;
}

absl::Status FidelityDiagnostic::AddLayer(int layer, absl::Span<const float> q,
                                          absl::Span<const float> k, int tokens) {
  const int hd = rope_.head_dim;
  const int kv_heads = shape_.num_kv_heads;
  if (layer < 0 || layer >= shape_.num_layers || results_[0].contains(layer)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("layer %d is out of range or was already added", layer));
  }
  if (tokens <= 0 || tokens % options_.chunk_tokens != 0 ||
      q.size() != static_cast<size_t>(tokens) * num_q_heads_ * hd ||
      k.size() != static_cast<size_t>(tokens) * kv_heads * hd) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "layer %d: %d tokens with q/k of %d/%d values; need whole chunks of %d and "
        "[tokens][%d][%d] / [tokens][%d][%d]",
        layer, tokens, q.size(), k.size(), options_.chunk_tokens, num_q_heads_, hd, kv_heads, hd));
  }
  const AttentionShape all{
      .tokens = tokens, .num_q_heads = num_q_heads_, .num_kv_heads = kv_heads, .head_dim = hd};
  const int chunk = options_.chunk_tokens;
  const AttentionShape chunk_shape{
      .tokens = chunk, .num_q_heads = num_q_heads_, .num_kv_heads = kv_heads, .head_dim = hd};
  const RopeRotator rotator(rope_);
  const size_t q_chunk = static_cast<size_t>(chunk) * num_q_heads_ * hd;
  const size_t k_chunk = static_cast<size_t>(chunk) * kv_heads * hd;

  for (size_t b = 0; b < options_.bits.size(); ++b) {
    LayerFidelity result{.layer = layer};
    std::vector<int> measured;
    for (int m = 0; m < kNumKMethods; ++m) {
      if (!quantizers_[b][m].empty()) measured.push_back(m);
    }
    // k̂ for every measured method: [method][tokens][kv_heads][hd].
    std::vector<std::vector<float>> k_hat(kNumKMethods);
    for (int m : measured) {
      k_hat[m].resize(k.size());
      for (int h = 0; h < kv_heads; ++h) {
        const GroupedQuantizer& quantizer = quantizers_[b][m][layer * kv_heads + h];
        std::vector<uint8_t> record(quantizer.PackedBytes());
        for (int t = 0; t < tokens; ++t) {
          const size_t at = (static_cast<size_t>(t) * kv_heads + h) * hd;
          quantizer.Encode(k.subspan(at, hd), absl::MakeSpan(record));
          quantizer.Decode(record, absl::MakeSpan(k_hat[m]).subspan(at, hd));
        }
      }
      absl::StatusOr<double> mae = KernelMae(q, k, k_hat[m], all, rope_, options_.offsets);
      if (!mae.ok()) return mae.status();
      result.mae[m] = *mae;
    }
    int64_t queries = 0;
    for (int c = 0; c < tokens / chunk; ++c) {
      std::vector<float> q_rot(q.begin() + c * q_chunk, q.begin() + (c + 1) * q_chunk);
      std::vector<float> k_rot(k.begin() + c * k_chunk, k.begin() + (c + 1) * k_chunk);
      RotateChunk(rotator, chunk, num_q_heads_, hd, q_rot.data());
      RotateChunk(rotator, chunk, kv_heads, hd, k_rot.data());
      std::vector<std::vector<float>> k_hat_rot(kNumKMethods);
      std::vector<absl::Span<const float>> k_hat_spans;
      for (int m : measured) {
        k_hat_rot[m].assign(k_hat[m].begin() + c * k_chunk, k_hat[m].begin() + (c + 1) * k_chunk);
        RotateChunk(rotator, chunk, kv_heads, hd, k_hat_rot[m].data());
        k_hat_spans.push_back(k_hat_rot[m]);
      }
      absl::StatusOr<std::vector<AttentionFidelity>> f = CausalAttentionFidelities(
          q_rot, k_rot, k_hat_spans, chunk_shape, options_.first_query, options_.top_k);
      if (!f.ok()) return f.status();
      // (*f)[i] belongs to measured[i].
      for (size_t i = 0; i < measured.size(); ++i) {
        result.kl[measured[i]] += (*f)[i].kl * (*f)[i].queries;
        result.top_k[measured[i]] += (*f)[i].top_k_overlap * (*f)[i].queries;
      }
      queries += (*f)[0].queries;
    }
    for (int m : measured) {
      result.kl[m] /= queries;
      result.top_k[m] /= queries;
    }
    results_[b][layer] = result;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BudgetFidelity>> FidelityDiagnostic::Finish() const {
  std::vector<BudgetFidelity> report;
  for (size_t b = 0; b < options_.bits.size(); ++b) {
    if (static_cast<int>(results_[b].size()) != shape_.num_layers) {
      return absl::FailedPreconditionError(absl::StrFormat("only %d of %d layers were added",
                                                           results_[b].size(), shape_.num_layers));
    }
    BudgetFidelity budget{.bits = options_.bits[b]};
    const bool has_product = !quantizers_[b][static_cast<int>(KMethod::kBlockGtqProduct)].empty();
    for (const auto& [layer, r] : results_[b]) {
      budget.layers.push_back(r);
      const double tq = r.mae[static_cast<int>(KMethod::kTqMse)];
      const double bgt = r.mae[static_cast<int>(KMethod::kBlockGtq)];
      const double product = r.mae[static_cast<int>(KMethod::kBlockGtqProduct)];
      if (bgt < tq) ++budget.wins;
      budget.mae_reduction_mean += tq > 0 ? 1.0 - bgt / tq : 0.0;
      if (has_product) budget.mae_reduction_mean_product += tq > 0 ? 1.0 - product / tq : 0.0;
    }
    budget.mae_reduction_mean /= shape_.num_layers;
    budget.mae_reduction_mean_product /= shape_.num_layers;
    report.push_back(std::move(budget));
  }
  return report;
}

}  // namespace kvplan
