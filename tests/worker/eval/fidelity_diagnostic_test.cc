// The fidelity diagnostic of one stored plan (`kvplan-worker validate`), on
// synthetic activations: no model needed.
#include "worker/eval/fidelity_diagnostic.h"

#include <random>
#include <vector>

#include "core/energy_table.h"
#include "core/plan.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

// A plan with K width groups aligned to 8 dims is measured against uniform
// TQ-MSE at its budget: the baseline is built from the plan's options, so the
// alignment (which uniform K refuses) must not be carried over to it.
TEST(FidelityDiagnosticTest, CreateForPlanMeasuresAKGroupAlignedPlan) {
  constexpr int kLayers = 2, kKvHeads = 1, kQHeads = 2, kHeadDim = 16, kTokens = 32;
  nlohmann::json energies = nlohmann::json::object();
  for (int l = 0; l < kLayers; ++l) {
    std::vector<double> scores;
    for (int b = 0; b < kHeadDim / 2; ++b) scores.push_back(100.0 / (1 + b * (1 + l)));
    energies[std::to_string(l) + ".0"] = scores;
  }
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = kHeadDim;
  absl::StatusOr<KvPlan> plan = BuildPlan(*EnergyTableFromJson(energies), rope,
                                          {.k_bits = 3, .v_bits = 3, .k_group_align = 8});
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<FidelityDiagnostic> diag =
      FidelityDiagnostic::CreateForPlan(*plan, kQHeads, {.chunk_tokens = kTokens});
  ASSERT_TRUE(diag.ok()) << diag.status();

  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int l = 0; l < kLayers; ++l) {
    std::vector<float> q(kTokens * kQHeads * kHeadDim), k(kTokens * kKvHeads * kHeadDim);
    for (float& x : q) x = normal(rng);
    for (float& x : k) x = normal(rng);
    ASSERT_TRUE(diag->AddLayer(l, q, k, kTokens).ok());
  }
  absl::StatusOr<std::vector<BudgetFidelity>> report = diag->Finish();
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->size(), 1u);
  EXPECT_EQ((*report)[0].bits, 3);
  ASSERT_EQ((*report)[0].layers.size(), 2u);
  for (const LayerFidelity& layer : (*report)[0].layers) {
    EXPECT_GT(layer.mae[static_cast<int>(KMethod::kBlockGtq)], 0.0) << layer.layer;
    EXPECT_GT(layer.mae[static_cast<int>(KMethod::kTqMse)], 0.0) << layer.layer;
  }
}

}  // namespace
}  // namespace kvplan
