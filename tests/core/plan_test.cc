#include "core/plan.h"

#include <random>
#include <set>

#include "core/allocator.h"
#include "core/codebook.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

RopeSpec Rope(int head_dim) {
  RopeSpec rope;
  rope.head_dim = head_dim;
  rope.rotary_dim = head_dim;
  return rope;
}

EnergyTable Table(int layers, int heads, int blocks, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> energy(0.0, 1.0);
  nlohmann::json json = nlohmann::json::object();
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < heads; ++h) {
      std::vector<double> q(blocks), k(blocks);
      for (int i = 0; i < blocks; ++i) {
        q[i] = energy(rng) * (blocks - i);
        k[i] = energy(rng) * (blocks - i);
      }
      json[std::to_string(l) + "." + std::to_string(h)] = {{"q", q}, {"k", k}};
    }
  }
  return *EnergyTableFromJson(json);
}

TEST(PlanTest, BuildsGreedyAllocationsAndNamesEveryRotation) {
  const EnergyTable table = Table(2, 2, 16, 1);
  absl::StatusOr<KvPlan> plan = BuildPlan(table, Rope(32), {.k_bits = 2.5, .v_bits = 3});
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h) {
      absl::StatusOr<std::vector<int>> expected =
          GreedyAllocate(*table.Scores(l, h, ScoreKind::kSum), {.avg_bits = 2.5});
      EXPECT_EQ(plan->KBlockBits(l, h), *expected);
      absl::StatusOr<GroupLayout> layout = plan->KLayout(l, h);
      ASSERT_TRUE(layout.ok());
      for (const QuantGroup& g : layout->groups)
        EXPECT_TRUE(plan->rotation_hashes.contains(g.size));
    }
  }
  EXPECT_TRUE(plan->rotation_hashes.contains(32)) << "V's rotation";
  absl::StatusOr<std::map<int, Rotation>> rotations = PlanRotations(*plan);
  ASSERT_TRUE(rotations.ok()) << rotations.status();
  EXPECT_EQ(rotations->size(), plan->rotation_hashes.size());
}

TEST(PlanTest, NamesTheCodebookOfEveryWidthItUses) {
  absl::StatusOr<KvPlan> plan =
      BuildPlan(Table(2, 2, 16, 7), Rope(32), {.k_bits = 2.5, .v_bits = 5});
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::set<int> widths = {5};
  for (const std::vector<int>& head : plan->k_block_bits) widths.insert(head.begin(), head.end());
  ASSERT_GT(widths.size(), 2u) << "the greedy should mix widths here";
  std::set<int> named;
  for (const auto& [bits, hash] : plan->codebook_hashes) {
    named.insert(bits);
    EXPECT_EQ(hash, LloydMaxCodebook(bits).content_hash) << bits;
  }
  EXPECT_EQ(named, widths);
  // The codebooks are content: naming other tables is another plan.
  KvPlan other = *plan;
  other.codebook_hashes.begin()->second = std::string(64, '0');
  EXPECT_NE(PlanDigest(other), PlanDigest(*plan));
}

TEST(PlanTest, UniformSchemeIsOneIdentityGroup) {
  absl::StatusOr<KvPlan> plan = BuildPlan(
      Table(1, 1, 8, 2), Rope(16), {.k_scheme = KScheme::kUniform, .k_bits = 3, .v_bits = 2});
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<GroupLayout> layout = plan->KLayout(0, 0);
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(*layout, *UniformLayout(16, 3));
  EXPECT_EQ(plan->rotation_hashes.size(), 1u);
}

TEST(PlanTest, JsonRoundTripKeepsTheDigest) {
  absl::StatusOr<KvPlan> plan = BuildPlan(Table(3, 2, 8, 3), Rope(16), {.k_bits = 3, .v_bits = 3});
  ASSERT_TRUE(plan.ok());
  plan->model_fingerprint = "abc";
  plan->provenance = {.tokens = 77, .stats_digest = "d", .created_unix = 5, .source = "test"};
  const std::string json = PlanToJson(*plan);
  absl::StatusOr<KvPlan> back = PlanFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(PlanDigest(*back), PlanDigest(*plan));
  EXPECT_EQ(back->k_block_bits, plan->k_block_bits);
  EXPECT_EQ(back->rotation_hashes, plan->rotation_hashes);
  EXPECT_EQ(back->codebook_hashes, plan->codebook_hashes);
  EXPECT_EQ(back->provenance.tokens, 77u);
  EXPECT_EQ(back->model_fingerprint, "abc");
  EXPECT_EQ(PlanToJson(*back), json);
}

TEST(PlanTest, DigestIgnoresProvenanceButNotContent) {
  KvPlan plan = *BuildPlan(Table(1, 1, 8, 4), Rope(16), {.k_bits = 3, .v_bits = 3});
  const std::string digest = PlanDigest(plan);
  plan.provenance.created_unix = 123;
  EXPECT_EQ(PlanDigest(plan), digest);
  plan.model_fingerprint = "other";
  EXPECT_NE(PlanDigest(plan), digest);
}

TEST(PlanTest, TamperedOrForeignPlansAreRefused) {
  const KvPlan plan = *BuildPlan(Table(1, 2, 8, 5), Rope(16), {.k_bits = 3, .v_bits = 3});
  nlohmann::json json = nlohmann::json::parse(PlanToJson(plan));

  nlohmann::json edited = json;
  std::swap(edited["k_block_bits"][0][0], edited["k_block_bits"][0][7]);
  if (edited["k_block_bits"] != json["k_block_bits"]) {
    absl::Status st = PlanFromJson(edited.dump()).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_NE(st.message().find("digest mismatch"), absl::string_view::npos) << st;
  }
  edited = json;
  edited["k_block_bits"][1][0] = edited["k_block_bits"][1][0].get<int>() + 1;
  EXPECT_NE(PlanFromJson(edited.dump()).status().message().find("budget"), absl::string_view::npos);
  edited = json;
  edited["format_version"] = 99;
  EXPECT_EQ(PlanFromJson(edited.dump()).status().code(), absl::StatusCode::kFailedPrecondition);
  edited = json;
  edited["rotations"].erase("16");
  EXPECT_NE(PlanFromJson(edited.dump()).status().message().find("group size 16"),
            absl::string_view::npos);
  edited = json;
  edited["format_version"] = 1;  // Plans before codebook names: rebuild, not upgrade.
  EXPECT_NE(PlanFromJson(edited.dump()).status().message().find("rebuild the plan"),
            absl::string_view::npos);
  edited = json;
  edited.erase("codebooks");
  EXPECT_NE(PlanFromJson(edited.dump()).status().message().find("'codebooks' must be an object"),
            absl::string_view::npos);
  edited = json;
  edited["codebooks"].erase("3");
  EXPECT_NE(PlanFromJson(edited.dump()).status().message().find("3-bit codes"),
            absl::string_view::npos);
  int unused = kMaxCodeBits;
  while (plan.codebook_hashes.contains(unused)) --unused;
  edited = json;
  edited["codebooks"][std::to_string(unused)] = LloydMaxCodebook(unused).content_hash;
  EXPECT_NE(PlanFromJson(edited.dump()).status().message().find("no K block or V uses"),
            absl::string_view::npos);
  // Another build's 3-bit table: refused before the digest is even looked at,
  // naming the width, because decoding with the wrong table is silent.
  edited = json;
  edited["codebooks"]["3"] = std::string(64, 'a');
  absl::Status foreign = PlanFromJson(edited.dump()).status();
  EXPECT_EQ(foreign.code(), absl::StatusCode::kFailedPrecondition) << foreign;
  EXPECT_NE(foreign.message().find("3-bit codebook"), absl::string_view::npos) << foreign;
  edited = json;
  edited["k_block_bits"].erase(1);
  EXPECT_FALSE(PlanFromJson(edited.dump()).ok());
  EXPECT_FALSE(PlanFromJson("{").ok());
  EXPECT_FALSE(PlanFromJson("[]").ok());
}

TEST(PlanTest, RefusesBudgetsAndShapesThatDoNotFit) {
  const EnergyTable table = Table(1, 1, 8, 6);
  EXPECT_EQ(BuildPlan(table, Rope(16), {.k_bits = 9}).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(BuildPlan(table, Rope(16), {.k_bits = 3, .v_bits = 0}).status().code(),
            absl::StatusCode::kOutOfRange);
  absl::Status st = BuildPlan(table, Rope(32), {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("8 blocks per head"), absl::string_view::npos) << st;
}

}  // namespace
}  // namespace kvplan
