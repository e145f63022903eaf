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
  RopeSpec rope;
  rope.head_dim = rope.rotary_dim = 8;
  const std::string calib = dir.Path("stats.kvpc");
  EXPECT_TRUE(WriteFileAtomically(calib, SerializeCalibrationFile({.model_fingerprint = "model-fp",
                                                                   .rope = rope,
                                                                   .num_q_heads = 4,
                                                                   .stats = stats}))
                  .ok());
  return calib;
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
  absl::StatusOr<KvPlan> plan = PlanFromJson(*ReadFile(dir.Path("plan.json")));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->options.exempt_layers, (std::vector<int>{0, 2}));
  EXPECT_EQ(plan->KBlockBits(2, 1), (std::vector<int>{6, 6, 6, 6}));
  EXPECT_EQ(plan->KBlockBits(1, 1), (std::vector<int>{4, 3, 2, 1}));
  EXPECT_EQ(plan->VBits(0), 6);
  EXPECT_EQ(plan->VBits(1), 2);

  r = RunKvplan(build + "--exempt-layers 0");  // --exempt-bits defaults to 8.
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(PlanFromJson(*ReadFile(dir.Path("plan.json")))->KBlockBits(0, 0),
            (std::vector<int>{8, 8, 8, 8}));

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

TEST(KvplanPlanTest, BuildsFromReferenceEnergiesWithAModelConfig) {
  const std::string reference = SharedPath("reference/doc-llama-h64.blockgtq-reference.json");
  if (!std::ifstream(reference)) GTEST_SKIP() << "../shared/reference not present";
  ScratchDir dir("kvplan_plan_test_ref");
  RunResult r = RunKvplan("plan build --stats " + reference + " --model-config " +
                          SharedPath("models/doc-llama-h64/config.json") +
                          " --k-bits 3 --v-bits 3 --out " + dir.Path("plan.json"));
  ASSERT_EQ(r.exit_code, 0) << r.out;
  absl::StatusOr<KvPlan> plan = PlanFromJson(*ReadFile(dir.Path("plan.json")));
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
