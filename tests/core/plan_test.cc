#include "core/plan.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_format.h"
#include "core/allocator.h"
#include "core/codebook.h"
#include "core/digest.h"
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

// Statistics from a formula rather than a <random> distribution, whose output
// the standard leaves to the library: the pinned digests below must not move
// with the toolchain.
EnergyTable FormulaTable(int layers, int heads, int blocks) {
  nlohmann::json json = nlohmann::json::object();
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < heads; ++h) {
      std::vector<double> q(blocks), k(blocks);
      for (int i = 0; i < blocks; ++i) {
        q[i] = 1.0 + (l * 7 + h * 3 + i * 5) % 11;
        k[i] = 0.5 + (l * 5 + h * 11 + i * 3) % 7;
      }
      json[std::to_string(l) + "." + std::to_string(h)] = {{"q", q}, {"k", k}};
    }
  }
  return *EnergyTableFromJson(json);
}

// Plans without exempt layers must keep the JSON and digest they had before
// exemptions existed: stored plans, channels and node caches are keyed by it.
TEST(PlanTest, PlansWithoutExemptionsKeepTheirDigestAndJson) {
  // Computed by the code before exempt layers were added.
  struct Pinned {
    KScheme scheme;
    const char* digest;
    const char* json_sha256;
  };
  const Pinned pinned[] = {
      {KScheme::kBlockGtq, "d2fa5430254a1b8c48221d9d9c783274cf968bf7d446ffe1690699db37f377df",
       "d53e70f852addeaa1e14846a3f920d0c968442aeb519c933c8111335f20036e8"},
      {KScheme::kUniform, "9bd84e26621df6ee9e70c2d75ac1974da906ebdd19803875a3253f4dd7a99b62",
       "e5e69a4cee4b3894d1a4f86d92f3fa2e6c5bdab219a95e4a9b67d957c38f72bc"},
  };
  for (const Pinned& p : pinned) {
    absl::StatusOr<KvPlan> plan = BuildPlan(FormulaTable(3, 2, 8), Rope(16),
                                            {.k_scheme = p.scheme, .k_bits = 2.5, .v_bits = 3});
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan->model_fingerprint = "pinned";
    plan->provenance = {.tokens = 1, .stats_digest = "s", .created_unix = 2, .source = "t"};
    const std::string json = PlanToJson(*plan);
    EXPECT_EQ(PlanDigest(*plan), p.digest) << KSchemeName(p.scheme);
    EXPECT_EQ(Sha256Hex(json), p.json_sha256) << KSchemeName(p.scheme) << "\n" << json;
    EXPECT_EQ(json.find("exempt"), std::string::npos) << json;
  }
}

TEST(PlanTest, ExemptLayersKeepKAndVAtExemptBitsAndTheBudgetGoesToTheRest) {
  const EnergyTable table = Table(4, 2, 16, 8);
  // max_bits bounds the allocated layers only: exempt ones sit above it.
  const PlanOptions options{
      .k_bits = 2.5, .v_bits = 2, .max_bits = 6, .exempt_layers = {0, 3}, .exempt_bits = 8};
  absl::StatusOr<KvPlan> plan = BuildPlan(table, Rope(32), options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  int allocated_bits = 0, allocated_blocks = 0;
  for (int l = 0; l < 4; ++l) {
    const bool exempt = l == 0 || l == 3;
    EXPECT_EQ(plan->IsExempt(l), exempt) << l;
    EXPECT_EQ(plan->VBits(l), exempt ? 8 : 2) << l;
    for (int h = 0; h < 2; ++h) {
      const std::vector<int>& bits = plan->KBlockBits(l, h);
      if (exempt) {
        EXPECT_EQ(bits, std::vector<int>(16, 8)) << l << "." << h;
        EXPECT_EQ(*plan->KLayout(l, h), *UniformLayout(32, 8)) << "one group, as uniform";
        continue;
      }
      absl::StatusOr<std::vector<int>> expected =
          GreedyAllocate(*table.Scores(l, h, ScoreKind::kSum), {.avg_bits = 2.5, .max_bits = 6});
      EXPECT_EQ(bits, *expected) << l << "." << h;
      for (int b : bits) allocated_bits += b;
      allocated_blocks += static_cast<int>(bits.size());
    }
  }
  EXPECT_EQ(static_cast<double>(allocated_bits) / allocated_blocks, 2.5)
      << "k_bits is the mean over the non-exempt layers";
  EXPECT_TRUE(plan->codebook_hashes.contains(8));
  EXPECT_EQ(plan->codebook_hashes.at(8), LloydMaxCodebook(8).content_hash);
  EXPECT_TRUE(plan->codebook_hashes.contains(2));
  EXPECT_EQ(PlanLabel(*plan), "block-gtq K2.5V2, layers 0,3 at 8 bits");

  // Every layer exempt: V never uses v_bits, so no 2-bit codebook is named.
  absl::StatusOr<KvPlan> all = BuildPlan(
      table, Rope(32), {.k_bits = 3, .v_bits = 2, .exempt_layers = {0, 1, 2, 3}, .exempt_bits = 4});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->codebook_hashes.size(), 1u);
  EXPECT_TRUE(all->codebook_hashes.contains(4));
  ASSERT_TRUE(PlanFromJson(PlanToJson(*all)).ok());
}

TEST(PlanTest, ExemptLayersRoundTripThroughJsonAndAreInTheDigest) {
  const EnergyTable table = Table(3, 2, 8, 9);
  absl::StatusOr<KvPlan> plan = BuildPlan(
      table, Rope(16), {.k_bits = 2, .v_bits = 2, .exempt_layers = {0, 2}, .exempt_bits = 6});
  ASSERT_TRUE(plan.ok()) << plan.status();
  plan->model_fingerprint = "fp";
  const std::string json = PlanToJson(*plan);
  const nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["options"]["exempt_layers"], nlohmann::json::array({0, 2}));
  EXPECT_EQ(parsed["options"]["exempt_bits"], 6);
  absl::StatusOr<KvPlan> back = PlanFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->options.exempt_layers, plan->options.exempt_layers);
  EXPECT_EQ(back->options.exempt_bits, 6);
  EXPECT_EQ(back->k_block_bits, plan->k_block_bits);
  EXPECT_EQ(PlanDigest(*back), PlanDigest(*plan));
  EXPECT_EQ(PlanToJson(*back), json);

  // bytes_per_token counts the exempt layers' V at 6 bits: per head, 16·6/8
  // code bytes + a norm there, 16·2/8 + a norm elsewhere.
  EXPECT_EQ(parsed["bytes_per_token"]["v"].get<double>(), 2 * (14.0 + 6.0 + 14.0));
  EXPECT_EQ(parsed["bytes_per_token"]["v"].get<double>(), PlanBytesPerToken(*plan).v());
  EXPECT_EQ(parsed["bytes_per_token"]["k"].get<double>(), PlanBytesPerToken(*plan).k());

  // The exemptions are content: other layers or another width is another plan.
  KvPlan other = *plan;
  other.options.exempt_bits = 7;
  EXPECT_NE(PlanDigest(other), PlanDigest(*plan));
  other = *plan;
  other.options.exempt_layers = {0};
  EXPECT_NE(PlanDigest(other), PlanDigest(*plan));
  absl::StatusOr<KvPlan> none = BuildPlan(table, Rope(16), {.k_bits = 2, .v_bits = 2});
  ASSERT_TRUE(none.ok());
  none->model_fingerprint = "fp";
  EXPECT_NE(PlanDigest(*none), PlanDigest(*plan));
}

TEST(PlanTest, BadExemptLayersAreRefusedNamingTheLayer) {
  const EnergyTable table = Table(4, 1, 8, 10);
  struct Bad {
    std::vector<int> layers;
    int bits;
    absl::StatusCode code;
    const char* message;
  };
  const Bad bad[] = {
      {{4}, 8, absl::StatusCode::kInvalidArgument, "exempt layer 4 is outside"},
      {{-1}, 8, absl::StatusCode::kInvalidArgument, "exempt layer -1 is outside"},
      {{0, 2, 2}, 8, absl::StatusCode::kInvalidArgument, "exempt layer 2 is repeated"},
      {{3, 1}, 8, absl::StatusCode::kInvalidArgument, "exempt layer 1 is out of order"},
      {{0}, 0, absl::StatusCode::kOutOfRange, "width 0 bits is outside [1, 8]"},
      {{0}, 9, absl::StatusCode::kOutOfRange, "width 9 bits is outside [1, 8]"},
  };
  for (const Bad& b : bad) {
    absl::Status st =
        BuildPlan(table, Rope(16),
                  {.k_bits = 3, .v_bits = 3, .exempt_layers = b.layers, .exempt_bits = b.bits})
            .status();
    EXPECT_EQ(st.code(), b.code) << st;
    EXPECT_NE(st.message().find(b.message), std::string_view::npos) << st;
  }

  KvPlan plan = *BuildPlan(table, Rope(16),
                           {.k_bits = 3, .v_bits = 3, .exempt_layers = {1}, .exempt_bits = 8});
  const nlohmann::json json = nlohmann::json::parse(PlanToJson(plan));
  auto refused = [](const nlohmann::json& edited) {
    return std::string(PlanFromJson(edited.dump()).status().message());
  };
  nlohmann::json edited = json;
  edited["k_block_bits"][1][3] = 7;  // Layer 1 (one KV head) is exempt at 8.
  EXPECT_NE(refused(edited).find("exempt layer 1, KV head 0) has a block at 7 bits"),
            std::string::npos)
      << refused(edited);
  edited = json;
  edited["options"]["exempt_layers"] = {1, 9};
  EXPECT_NE(refused(edited).find("exempt layer 9 is outside the model's layers [0, 4)"),
            std::string::npos)
      << refused(edited);
  edited = json;
  edited["options"]["exempt_layers"] = {1, 1};
  EXPECT_NE(refused(edited).find("exempt layer 1 is repeated"), std::string::npos);
  edited = json;
  edited["options"]["exempt_layers"] = {"1"};
  EXPECT_NE(refused(edited).find("array of layer indices"), std::string::npos);
  edited = json;
  edited["options"]["exempt_bits"] = 12;
  EXPECT_NE(refused(edited).find("width 12 bits"), std::string::npos);
  edited = json;
  edited["options"].erase("exempt_bits");
  EXPECT_NE(refused(edited).find("needs 'exempt_bits'"), std::string::npos);
  edited = json;
  edited["options"].erase("exempt_layers");
  EXPECT_NE(refused(edited).find("'exempt_bits' without 'exempt_layers'"), std::string::npos);
  // Dropping the exemption altogether is caught by the budget (or the digest).
  edited = json;
  edited["options"].erase("exempt_layers");
  edited["options"].erase("exempt_bits");
  EXPECT_FALSE(PlanFromJson(edited.dump()).ok());
}

TEST(PlanTest, KGroupAlignMakesEveryKGroupAMultipleOfTheAlignment) {
  const EnergyTable table = Table(3, 2, 32, 11);  // head_dim 64
  const absl::StatusOr<KvPlan> greedy = BuildPlan(table, Rope(64), {.k_bits = 3, .v_bits = 3});
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  for (int align : {4, 8, 16, 32}) {
    // Layer 1 exempt: it stays one group at exempt_bits, whatever the alignment.
    absl::StatusOr<KvPlan> plan = BuildPlan(
        table, Rope(64),
        {.k_bits = 3, .v_bits = 3, .exempt_layers = {1}, .exempt_bits = 8, .k_group_align = align});
    ASSERT_TRUE(plan.ok()) << align << ": " << plan.status();
    int differs_from_greedy = 0;
    for (int l = 0; l < 3; ++l) {
      for (int h = 0; h < 2; ++h) {
        const std::vector<int>& bits = plan->KBlockBits(l, h);
        absl::StatusOr<GroupLayout> layout = plan->KLayout(l, h);
        ASSERT_TRUE(layout.ok()) << layout.status();
        for (const QuantGroup& g : layout->groups) {
          EXPECT_EQ(g.size % align, 0) << "align " << align << ", head " << l << "." << h
                                       << ": a group of " << g.size << " dims";
          EXPECT_TRUE(plan->rotation_hashes.contains(g.size));
        }
        if (l == 1) {
          EXPECT_EQ(bits, std::vector<int>(32, 8));
          continue;
        }
        const std::vector<double> scores = *table.Scores(l, h, ScoreKind::kSum);
        EXPECT_EQ(bits, *GroupAlignedAllocate(scores, {.avg_bits = 3}, align / 2))
            << align << " " << l << "." << h;
        int spent = 0;
        for (int b : bits) spent += b;
        EXPECT_LE(spent, BitBudget(32, 3.0));
        EXPECT_GE(AllocationDistortion(scores, bits),
                  AllocationDistortion(scores, greedy->KBlockBits(l, h)))
            << "the greedy is the unconstrained optimum";
        differs_from_greedy += bits != greedy->KBlockBits(l, h);
      }
    }
    if (align >= 16) {
      EXPECT_GT(differs_from_greedy, 0) << align;
    }
    EXPECT_EQ(PlanLabel(*plan),
              absl::StrFormat("block-gtq K3V3, layer 1 at 8 bits, K groups of %d dims", align));
  }
}

TEST(PlanTest, KGroupAlignIsInTheJsonAndDigestOnlyWhenSet) {
  const EnergyTable table = Table(2, 2, 8, 12);  // head_dim 16
  absl::StatusOr<KvPlan> plain = BuildPlan(table, Rope(16), {.k_bits = 2.5, .v_bits = 2});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(PlanToJson(*plain).find("k_group_align"), std::string::npos);
  EXPECT_EQ(PlanLabel(*plain), "block-gtq K2.5V2");

  absl::StatusOr<KvPlan> plan =
      BuildPlan(table, Rope(16), {.k_bits = 2.5, .v_bits = 2, .k_group_align = 8});
  ASSERT_TRUE(plan.ok()) << plan.status();
  plan->model_fingerprint = "fp";
  plan->provenance = {.tokens = 3, .stats_digest = "s", .created_unix = 4, .source = "t"};
  const std::string json = PlanToJson(*plan);
  EXPECT_EQ(nlohmann::json::parse(json)["options"]["k_group_align"], 8);
  absl::StatusOr<KvPlan> back = PlanFromJson(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->options.k_group_align, 8);
  EXPECT_EQ(back->k_block_bits, plan->k_block_bits);
  EXPECT_EQ(PlanDigest(*back), PlanDigest(*plan));
  EXPECT_EQ(PlanToJson(*back), json);

  // The alignment is content: the same bits under another alignment (or none)
  // are another plan.
  KvPlan other = *plan;
  other.options.k_group_align = 16;
  EXPECT_NE(PlanDigest(other), PlanDigest(*plan));
  other.options.k_group_align = 0;
  EXPECT_NE(PlanDigest(other), PlanDigest(*plan));
  // Alignment may leave bits unspent (8 blocks in two 4-block groups at 2.25
  // bits: 16 of the 18 bits), and such a plan reads back.
  absl::StatusOr<KvPlan> under =
      BuildPlan(table, Rope(16), {.k_bits = 2.25, .v_bits = 2, .k_group_align = 8});
  ASSERT_TRUE(under.ok()) << under.status();
  for (const std::vector<int>& bits : under->k_block_bits) {
    int spent = 0;
    for (int b : bits) spent += b;
    EXPECT_EQ(spent, 16);
  }
  EXPECT_TRUE(PlanFromJson(PlanToJson(*under)).ok()) << PlanFromJson(PlanToJson(*under)).status();

  // At 2-dim groups (one block) the aligned allocation is the greedy's, yet
  // the plan says it was asked for.
  absl::StatusOr<KvPlan> two =
      BuildPlan(table, Rope(16), {.k_bits = 2.5, .v_bits = 2, .k_group_align = 2});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->k_block_bits, plain->k_block_bits);
  EXPECT_NE(PlanDigest(*two), PlanDigest(*plain));
}

TEST(PlanTest, BadKGroupAlignIsRefusedNamingTheValueHeadDimAndFix) {
  struct Bad {
    int head_dim;
    PlanOptions options;
    absl::StatusCode code;
    std::vector<const char*> messages;
  };
  const Bad bad[] = {
      {64,
       {.k_group_align = -16},
       absl::StatusCode::kOutOfRange,
       {"k_group_align -16 is negative", "head_dim 64", "4, 8, 16, 32, 64"}},
      {64,
       {.k_group_align = 12},
       absl::StatusCode::kInvalidArgument,
       {"k_group_align 12 does not split head_dim 64", "use 0 (off) or one of 4, 8, 16, 32, 64"}},
      {64,
       {.k_group_align = 7},
       absl::StatusCode::kInvalidArgument,
       {"k_group_align 7 does not split head_dim 64"}},
      {64,
       {.k_group_align = 128},
       absl::StatusCode::kInvalidArgument,
       {"k_group_align 128 does not split head_dim 64"}},
      {64,
       {.k_group_align = 2},
       absl::StatusCode::kInvalidArgument,
       {"k_group_align 2 splits head_dim 64 into 32 groups", "coarser alignment (one of 4, 8"}},
      // 16 units at head_dim 128 is the allocator's limit; 32 at 256 is not.
      {256,
       {.k_group_align = 8},
       absl::StatusCode::kInvalidArgument,
       {"k_group_align 8 splits head_dim 256 into 32 groups, more than the 16",
        "(one of 16, 32, 64, 128, 256) or 0 (off)"}},
      {64,
       {.k_scheme = KScheme::kUniform, .k_group_align = 16},
       absl::StatusCode::kInvalidArgument,
       {"k_group_align 16 applies to the block-gtq scheme", "uniform K is one group"}},
  };
  for (const Bad& b : bad) {
    PlanOptions options = b.options;
    options.k_bits = 3;
    options.v_bits = 3;
    absl::Status st =
        BuildPlan(Table(1, 1, b.head_dim / 2, 13), Rope(b.head_dim), options).status();
    EXPECT_EQ(st.code(), b.code) << st;
    for (const char* m : b.messages) EXPECT_NE(st.message().find(m), std::string::npos) << st;
    // A service checks the same before it loads any statistics.
    EXPECT_EQ(ValidateKGroupAlign(options, b.head_dim), st);
  }
  EXPECT_TRUE(BuildPlan(Table(1, 1, 64, 13), Rope(128), {.k_bits = 3, .k_group_align = 8}).ok())
      << "16 groups of 8 dims at head_dim 128";
  EXPECT_TRUE(ValidateKGroupAlign(PlanOptions{.k_scheme = KScheme::kUniform}, 64).ok());
}

TEST(PlanTest, AlignedPlansFromJsonAreCheckedForTheAlignment) {
  const EnergyTable table = Table(2, 1, 16, 14);  // head_dim 32
  KvPlan plan = *BuildPlan(table, Rope(32), {.k_bits = 3, .v_bits = 3, .k_group_align = 8});
  const nlohmann::json json = nlohmann::json::parse(PlanToJson(plan));
  auto refused = [](const nlohmann::json& edited) {
    return std::string(PlanFromJson(edited.dump()).status().message());
  };
  nlohmann::json edited = json;
  edited["options"]["k_group_align"] = 12;
  EXPECT_NE(refused(edited).find("k_group_align 12 does not split head_dim 32"), std::string::npos)
      << refused(edited);
  edited = json;
  edited["options"]["k_group_align"] = "8";
  EXPECT_NE(refused(edited).find("'k_group_align' must be a whole number"), std::string::npos)
      << refused(edited);
  edited = json;
  edited["options"]["k_scheme"] = "uniform";
  EXPECT_NE(refused(edited).find("applies to the block-gtq scheme"), std::string::npos)
      << refused(edited);

  // One bit moved between two blocks of the widest width breaks the 4-block
  // groups: refused by head and width before the digest is looked at.
  std::vector<int> head = json["k_block_bits"][1].get<std::vector<int>>();
  const int wide = *std::max_element(head.begin(), head.end());
  ASSERT_LT(wide, 8);
  *std::find(head.begin(), head.end(), wide) = wide + 1;
  *std::find(head.begin(), head.end(), wide) = wide - 1;
  edited = json;
  edited["k_block_bits"][1] = head;
  EXPECT_NE(refused(edited).find("k_block_bits[1] has"), std::string::npos) << refused(edited);
  EXPECT_NE(refused(edited).find("not a multiple of the 4 blocks (k_group_align 8 dims)"),
            std::string::npos)
      << refused(edited);
  edited = json;
  for (auto& b : edited["k_block_bits"][0]) b = b.get<int>() + 1;
  EXPECT_NE(refused(edited).find("over the budget 48"), std::string::npos) << refused(edited);
  // Whole groups at other places pass the structure checks; the digest catches them.
  head = json["k_block_bits"][0].get<std::vector<int>>();
  std::reverse(head.begin(), head.end());
  ASSERT_NE(nlohmann::json(head), json["k_block_bits"][0]);
  edited = json;
  edited["k_block_bits"][0] = head;
  EXPECT_EQ(PlanFromJson(edited.dump()).status().code(), absl::StatusCode::kDataLoss);

  // Dropping the option leaves an allocation the greedy would not make.
  edited = json;
  edited["options"].erase("k_group_align");
  EXPECT_FALSE(PlanFromJson(edited.dump()).ok());
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
