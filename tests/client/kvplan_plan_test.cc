// `kvplan plan build`, run as a user would.
#include <fstream>
#include <sstream>

#include "core/calibration_file.h"
#include "core/file_io.h"
#include "core/plan.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/cli_runner.h"

namespace kvplan {
namespace {

using ::kvplan::testing::RunKvplan;
using ::kvplan::testing::RunResult;
using ::kvplan::testing::ScratchDir;
using ::kvplan::testing::SharedPath;

// `stats` (4 query heads per file, fingerprint "model-fp", head_dim from the
// block count) as a calibration file in `dir`; returns its path.
std::string WriteCalibrationFile(const ScratchDir& dir, const BlockStats& stats) {
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 2 * stats.shape().num_blocks;
  const std::string calib = dir.Path("stats.kvpc");
  EXPECT_TRUE(WriteFileAtomically(calib, SerializeCalibrationFile({.model_fingerprint = "model-fp",
                                                                   .rope = rope,
                                                                   .num_q_heads = 4,
                                                                   .stats = stats}))
                  .ok());
  return calib;
}

// A calibration file of `layers` layers x 2 KV heads, head_dim 8, 10 tokens,
// every head with the same energies; returns its path.
std::string WriteCalibrationFile(const ScratchDir& dir, int layers) {
  BlockStats stats = *BlockStats::Create(
      {.num_layers = layers, .num_kv_heads = 2, .num_blocks = 4, .group_size = 2});
  for (int l = 0; l < layers; ++l) {
    for (int h = 0; h < 2; ++h) {
      EXPECT_TRUE(stats.Add(l, h, {40, 10, 4, 1}, 20, {30, 8, 2, 1}, 10).ok());
    }
  }
  return WriteCalibrationFile(dir, stats);
}

TEST(KvplanPlanTest, BuildsFromACalibrationFileAlone) {
  ScratchDir dir("kvplan_plan_test");
  const std::string calib = WriteCalibrationFile(dir, 2);
  RunResult r = RunKvplan("plan build --stats " + calib + " --k-bits 2.5 --v-bits 2 --out " +
                          dir.Path("plan.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  absl::StatusOr<std::string> text = ReadFile(dir.Path("plan.json"));
  ASSERT_TRUE(text.ok());
  absl::StatusOr<KvPlan> plan = PlanFromJson(*text);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->model_fingerprint, "model-fp");
  EXPECT_EQ(plan->provenance.tokens, 10u);
  EXPECT_EQ(plan->KBlockBits(1, 1), (std::vector<int>{4, 3, 2, 1}));
  EXPECT_NE(r.out.find(PlanDigest(*plan)), std::string::npos) << r.out;

  // The offline allocate and whatif verbs read the same file.
  r = RunKvplan("allocate --energy-json " + calib + " --bits 2.5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)["1.1"], nlohmann::json({4, 3, 2, 1}));
  r = RunKvplan("whatif --energy-json " + calib + " --k-bits 2.5 --v-bits 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(nlohmann::json::parse(r.out)[0]["v_bits"], 2);
}

TEST(KvplanPlanTest, ExemptLayersKeepTheirKAndVAtExemptBits) {
  ScratchDir dir("kvplan_plan_test_exempt");
  const std::string calib = WriteCalibrationFile(dir, 3);
  const std::string build = "plan build --stats " + calib + " --k-bits 2.5 --v-bits 2 --out " +
                            dir.Path("plan.json") + " ";
  RunResult r = RunKvplan(build + "--exempt-layers 0,2 --exempt-bits 6");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("block-gtq K2.5V2, layers 0,2 at 6 bits"), std::string::npos) << r.out;
  absl::StatusOr<KvPlan> plan = ReadPlanFile(dir.Path("plan.json"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->options.exempt_layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(plan->KBlockBits(2, 1), (std::vector<int>{6, 6, 6, 6}));
  EXPECT_EQ(plan->KBlockBits(1, 1), (std::vector<int>{4, 3, 2, 1}));
  EXPECT_EQ(plan->VBits(0), 6);
  EXPECT_EQ(plan->VBits(1), 2);

  r = RunKvplan(build + "--exempt-layers 0");  // --exempt-bits defaults to 8.
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(ReadPlanFile(dir.Path("plan.json"))->KBlockBits(0, 0), (std::vector<int>{8, 8, 8, 8}));

  const struct {
    const char* flags;
    const char* message;
  } bad[] = {
      {"--exempt-layers 0,3", "exempt layer 3 is outside the model's layers [0, 3)"},
      {"--exempt-layers 2,0", "exempt layer 0 is out of order"},
      {"--exempt-layers 0,x", "'x' is not a layer index"},
      {"--exempt-layers 0 --exempt-bits 9", "--exempt-bits 9 is outside [1, 8]"},
      {"--exempt-bits 6", "name them with --exempt-layers"},
  };
  for (const auto& b : bad) {
    r = RunKvplan(build + b.flags);
    EXPECT_EQ(r.exit_code, 2) << b.flags << "\n" << r.out;
    EXPECT_NE(r.out.find(b.message), std::string::npos) << b.flags << "\n" << r.out;
  }
}

// --k-group-align N: the written plan's options carry N and every K width
// group of every head is a multiple of N dims; bad values are refused naming
// the value and head_dim, the same in the what-if.
TEST(KvplanPlanTest, KGroupAlignPlansHaveWidthGroupsOfWholeUnits) {
  ScratchDir dir("kvplan_plan_test_align");
  // 2 layers x 2 KV heads, head_dim 64: energies falling with the block index,
  // so the greedy mixes widths in groups that are not multiples of 16 dims.
  BlockStats stats =
      *BlockStats::Create({.num_layers = 2, .num_kv_heads = 2, .num_blocks = 32, .group_size = 2});
  for (int l = 0; l < 2; ++l) {
    for (int h = 0; h < 2; ++h) {
      std::vector<double> q, k;
      for (int b = 0; b < 32; ++b) {
        q.push_back(1000.0 / (1 + b * (1 + l + h)));
        k.push_back(500.0 / (1 + b * (2 + h)));
      }
      ASSERT_TRUE(stats.Add(l, h, q, 20, k, 10).ok());
    }
  }
  const std::string calib = WriteCalibrationFile(dir, stats);
  const std::string build =
      "plan build --stats " + calib + " --k-bits 3 --v-bits 3 --out " + dir.Path("plan.json");
  RunResult r = RunKvplan(build);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const KvPlan greedy = *ReadPlanFile(dir.Path("plan.json"));
  for (int align : {16, 8}) {
    r = RunKvplan(build + " --k-group-align " + std::to_string(align));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("block-gtq K3V3, K groups of " + std::to_string(align) + " dims"),
              std::string::npos)
        << r.out;
    const std::string text = *ReadFile(dir.Path("plan.json"));
    EXPECT_EQ(nlohmann::json::parse(text)["options"]["k_group_align"], align);
    absl::StatusOr<KvPlan> plan = PlanFromJson(text);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->options.k_group_align, align);
    EXPECT_NE(plan->k_block_bits, greedy.k_block_bits) << align;
    for (int l = 0; l < 2; ++l) {
      for (int h = 0; h < 2; ++h) {
        absl::StatusOr<GroupLayout> layout = plan->KLayout(l, h);
        ASSERT_TRUE(layout.ok()) << layout.status();
        for (const QuantGroup& g : layout->groups) {
          EXPECT_EQ(g.size % align, 0) << align << ", head " << l << "." << h;
        }
      }
    }
  }

  // The offline what-if allocates the same way: fewer K bytes (fewer norms).
  const std::string whatif = "whatif --energy-json " + calib + " --k-bits 3 --v-bits 3 --json";
  r = RunKvplan(whatif);
  ASSERT_EQ(r.exit_code, 0) << r.out;
  const double greedy_k_bytes = nlohmann::json::parse(r.out)[0]["k_bytes_per_token_head"];
  r = RunKvplan(whatif + " --k-group-align 16");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_LT(nlohmann::json::parse(r.out)[0]["k_bytes_per_token_head"].get<double>(),
            greedy_k_bytes);

  const struct {
    std::string command;
    const char* message;
  } bad[] = {
      {build + " --k-group-align 12",
       "k_group_align 12 does not split head_dim 64 into whole groups"},
      {build + " --k-group-align 2", "k_group_align 2 splits head_dim 64 into 32 groups"},
      {build + " --k-group-align -4", "k_group_align -4 is negative"},
      {build + " --k-group-align 16 --uniform", "applies to the block-gtq scheme"},
      {build + " --k-group-align x", "--k-group-align: 'x' is not a whole number"},
      {build + " --k-group-align 4294967312", "--k-group-align 4294967312 is not a dim count"},
      {whatif + " --k-group-align 24", "k_group_align 24 does not split head_dim 64"},
  };
  for (const auto& b : bad) {
    r = RunKvplan(b.command);
    EXPECT_EQ(r.exit_code, 2) << b.command << "\n" << r.out;
    EXPECT_NE(r.out.find(b.message), std::string::npos) << b.command << "\n" << r.out;
  }
}

TEST(KvplanPlanTest, BuildsFromReferenceEnergiesWithAModelConfig) {
  const std::string reference = SharedPath("reference/doc-llama-h64.blockgtq-reference.json");
  if (!std::ifstream(reference)) GTEST_SKIP() << "../shared/reference not present";
  ScratchDir dir("kvplan_plan_test_ref");
  RunResult r = RunKvplan("plan build --stats " + reference + " --model-config " +
                          SharedPath("models/doc-llama-h64/config.json") +
                          " --k-bits 3 --v-bits 3 --out " + dir.Path("plan.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  absl::StatusOr<KvPlan> plan = ReadPlanFile(dir.Path("plan.json"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::ifstream in(reference);
  const nlohmann::json ref = nlohmann::json::parse(in);
  EXPECT_EQ(nlohmann::json(plan->KBlockBits(1, 0)), ref["bits"]["3"]["allocations"]["bgt"]["1.0"]);

  r = RunKvplan("plan build --stats " + reference + " --k-bits 3 --v-bits 3 --out " +
                dir.Path("x.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--model-config"), std::string::npos) << r.out;
  r = RunKvplan("plan build --stats " + reference + " --model-config " +
                SharedPath("models/doc-llama-h64/config.json") + " --k-bits 3 --v-bits 2.5 --out " +
                dir.Path("x.json"));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("whole number"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kvplan
