// The plan sidecar: round trip, binding to the digest, corruption detected.
#include "core/plan_sidecar.h"

#include "core/energy_table.h"
#include "gtest/gtest.h"

namespace kvplan {
namespace {

KvPlan TestPlan() {
  BlockStats stats =
      *BlockStats::Create({.num_layers = 2, .num_kv_heads = 2, .num_blocks = 4, .group_size = 1});
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h)
      EXPECT_TRUE(stats.Add(l, h, {40, 10, 4, 1}, 5, {30, 8, 2, 1}, 5).ok());
  }
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 8;
  KvPlan plan = *BuildPlan(*EnergyTableFromStats(stats), rope, {.k_bits = 2.5, .v_bits = 2});
  plan.model_fingerprint = "fp";
  return plan;
}

TEST(PlanSidecarTest, RoundTripsEveryField) {
  const KvPlan plan = TestPlan();
  absl::StatusOr<PlanSidecar> back = ParsePlanSidecar(PlanToSidecar(plan));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->digest, PlanDigest(plan));
  EXPECT_EQ(back->model_fingerprint, "fp");
  EXPECT_EQ(back->num_layers, 2);
  EXPECT_EQ(back->num_kv_heads, 2);
  EXPECT_EQ(back->head_dim, 8);
  EXPECT_EQ(back->v_bits, 2);
  EXPECT_EQ(back->k_block_bits, plan.k_block_bits);
  EXPECT_EQ(back->rotation_hashes, plan.rotation_hashes);
}

TEST(PlanSidecarTest, CorruptionAndTruncationAreDataLoss) {
  std::string bytes = PlanToSidecar(TestPlan());
  std::string flipped = bytes;
  flipped[80] ^= 1;
  EXPECT_EQ(ParsePlanSidecar(flipped).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParsePlanSidecar(bytes.substr(0, bytes.size() - 1)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParsePlanSidecar("JSON{}").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kvplan
