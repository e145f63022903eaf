// The plan sidecar: round trip, binding to the digest, corruption detected.
#include "core/plan_sidecar.h"

#include "absl/strings/str_format.h"
#include "core/byte_io.h"
#include "core/digest.h"
#include "core/energy_table.h"
#include "gtest/gtest.h"

namespace kvplan {
namespace {

RopeSpec SplitHalfRope() {
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 8;
  return rope;
}

// GPT-J style: interleaved, half the dimensions rotate, YaRN scaling.
RopeSpec InterleavedPartialYarnRope() {
  RopeSpec rope;
  rope.style = RopeStyle::kInterleaved;
  rope.head_dim = 8;
  rope.rotary_dim = 4;
  rope.theta = 500000;
  rope.scaling = {.type = RopeScalingType::kYarn,
                  .factor = 4,
                  .original_max_position_embeddings = 4096,
                  .beta_fast = 16,
                  .beta_slow = 2,
                  .truncate = false,
                  .attention_factor = 1.1386};
  return rope;
}

KvPlan TestPlan(const RopeSpec& rope = SplitHalfRope()) {
  BlockStats stats =
      *BlockStats::Create({.num_layers = 2, .num_kv_heads = 2, .num_blocks = 4, .group_size = 1});
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h)
      EXPECT_TRUE(stats.Add(l, h, {40, 10, 4, 1}, 5, {30, 8, 2, 1}, 5).ok());
  }
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
  EXPECT_EQ(back->codebook_hashes, plan.codebook_hashes);
  EXPECT_FALSE(back->codebook_hashes.empty());
  EXPECT_EQ(back->rope.style, RopeStyle::kSplitHalf);
  EXPECT_EQ(back->rope.head_dim, 8);
  EXPECT_EQ(back->rope.rotary_dim, 8);
}

TEST(PlanSidecarTest, CarriesTheExemptLayersAndTheirVWidth) {
  EXPECT_TRUE(ParsePlanSidecar(PlanToSidecar(TestPlan()))->exempt_layers.empty());
  BlockStats stats =
      *BlockStats::Create({.num_layers = 3, .num_kv_heads = 1, .num_blocks = 4, .group_size = 1});
  for (int l = 0; l < 3; ++l)
    EXPECT_TRUE(stats.Add(l, 0, {40, 10, 4, 1}, 5, {30, 8, 2, 1}, 5).ok());
  KvPlan plan = *BuildPlan(*EnergyTableFromStats(stats), SplitHalfRope(),
                           {.k_bits = 2, .v_bits = 2, .exempt_layers = {0, 2}, .exempt_bits = 6});
  absl::StatusOr<PlanSidecar> back = ParsePlanSidecar(PlanToSidecar(plan));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->exempt_layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(back->exempt_bits, 6);
  EXPECT_EQ(back->k_block_bits, plan.k_block_bits);
  EXPECT_EQ(back->codebook_hashes, plan.codebook_hashes);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(back->VBits(l), plan.VBits(l)) << l;
  EXPECT_EQ(back->VBits(1), 2);
  EXPECT_EQ(back->digest, PlanDigest(plan));

  // A layer past the model (the writer does not check): refused by name.
  plan.options.exempt_layers = {0, 3};
  absl::Status st = ParsePlanSidecar(PlanToSidecar(plan)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("exempt layer 3 is outside"), std::string::npos) << st;
}

// The sidecar carries bits, not the options that chose them: an aligned plan
// needs no new field, and its sidecar names the aligned plan's digest.
TEST(PlanSidecarTest, AlignedPlansNeedNoOtherFormat) {
  BlockStats stats =
      *BlockStats::Create({.num_layers = 2, .num_kv_heads = 1, .num_blocks = 8, .group_size = 1});
  for (int l = 0; l < 2; ++l) {
    EXPECT_TRUE(
        stats.Add(l, 0, {90, 40, 20, 10, 5, 3, 2, 1}, 5, {70, 30, 15, 8, 4, 2, 1, 1}, 5).ok());
  }
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 16;
  const EnergyTable table = *EnergyTableFromStats(stats);
  KvPlan plain = *BuildPlan(table, rope, {.k_bits = 3, .v_bits = 3});
  KvPlan aligned = *BuildPlan(table, rope, {.k_bits = 3, .v_bits = 3, .k_group_align = 8});
  ASSERT_NE(aligned.k_block_bits, plain.k_block_bits) << "the alignment should move bits here";
  absl::StatusOr<PlanSidecar> back = ParsePlanSidecar(PlanToSidecar(aligned));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->digest, PlanDigest(aligned));
  EXPECT_NE(back->digest, PlanDigest(plain));
  EXPECT_EQ(back->k_block_bits, aligned.k_block_bits);
  EXPECT_EQ(back->rotation_hashes, aligned.rotation_hashes);
  EXPECT_EQ(back->codebook_hashes, aligned.codebook_hashes);
}

TEST(PlanSidecarTest, CarriesTheRopeLayoutSoANodeRebuildsEveryGroupLayout) {
  const RopeSpec rope = InterleavedPartialYarnRope();
  const KvPlan plan = TestPlan(rope);
  absl::StatusOr<PlanSidecar> back = ParsePlanSidecar(PlanToSidecar(plan));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->rope.style, RopeStyle::kInterleaved);
  EXPECT_EQ(back->rope.head_dim, 8);
  EXPECT_EQ(back->rope.rotary_dim, 4);
  EXPECT_EQ(back->rope.theta, 500000);
  EXPECT_EQ(back->rope.scaling.type, RopeScalingType::kYarn);
  EXPECT_EQ(back->rope.scaling.factor, 4);
  EXPECT_EQ(back->rope.scaling.original_max_position_embeddings, 4096);
  EXPECT_EQ(back->rope.scaling.beta_fast, 16);
  EXPECT_EQ(back->rope.scaling.beta_slow, 2);
  EXPECT_FALSE(back->rope.scaling.truncate);
  EXPECT_EQ(back->rope.scaling.attention_factor, 1.1386);  // Exact: f64 bits travel as is.
  EXPECT_EQ(back->rope.InvFrequencies(), rope.InvFrequencies());
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h) {
      absl::StatusOr<GroupLayout> from_plan = plan.KLayout(l, h);
      absl::StatusOr<GroupLayout> from_sidecar =
          BuildGroupLayout(back->k_block_bits[l * 2 + h], back->rope.AllBlockDims());
      ASSERT_TRUE(from_plan.ok() && from_sidecar.ok());
      EXPECT_EQ(*from_sidecar, *from_plan) << "layer " << l << " head " << h;
    }
  }
}

// Rewrites the version field and re-signs the bytes, as an older or newer
// writer would have produced them.
std::string WithVersion(std::string bytes, uint32_t version) {
  std::string body = bytes.substr(0, bytes.size() - 64);
  std::string field;
  AppendLittleEndian(field, version, 4);
  body.replace(4, 4, field);
  return body + Sha256Hex(body);
}

TEST(PlanSidecarTest, OtherVersionsAreRefusedByName) {
  const std::string bytes = PlanToSidecar(TestPlan());
  ASSERT_TRUE(ParsePlanSidecar(WithVersion(bytes, 3)).ok());
  for (uint32_t version : {1u, 2u, 4u}) {
    absl::Status st = ParsePlanSidecar(WithVersion(bytes, version)).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(st.message().find(absl::StrFormat("version %d is not supported", version)),
              std::string::npos)
        << st;
    EXPECT_NE(st.message().find("export the plan again"), std::string::npos) << st;
  }
}

TEST(PlanSidecarTest, BadRopeCodesAreDataLoss) {
  const std::string bytes = PlanToSidecar(TestPlan());
  // The rope's style byte follows the magic, version, digest, fingerprint ("fp")
  // and the shape (3 x u16, 2 x u8).
  const size_t style_at = 4 + 4 + 64 + 2 + 2 + 6 + 2;
  std::string body = bytes.substr(0, bytes.size() - 64);
  ASSERT_EQ(body[style_at], 0);
  body[style_at] = 7;
  absl::Status st = ParsePlanSidecar(body + Sha256Hex(body)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(st.message().find("style 7"), std::string::npos) << st;
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
