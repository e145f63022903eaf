#include "worker/model/transformer.h"

#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/model/test_util.h"
#include "tests/worker/model/tiny_model.h"

namespace kvplan {
namespace {

using ::kvplan::model_test::MakeTestDir;
using ::kvplan::model_test::ReadBytes;
using ::kvplan::model_test::TinyConfig;
using ::kvplan::model_test::WriteBytes;
using ::kvplan::model_test::WriteTinyModel;
using nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;

json ReadJson(const std::filesystem::path& path) { return json::parse(ReadBytes(path)); }

std::vector<int32_t> Ids(const json& list) { return list.get<std::vector<int32_t>>(); }

// Every element of `actual` within `rel` of `expected`, relative to the larger
// of |expected| and 1e-3 of the vector's largest magnitude (blocks with near-zero
// energy carry no information at 1e-3 relative).
void ExpectEnergiesNear(const std::vector<double>& actual, const std::vector<double>& expected,
                        double rel, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double largest = 0;
  for (double e : expected) largest = std::max(largest, std::abs(e));
  for (size_t i = 0; i < expected.size(); ++i) {
    const double scale = std::max(std::abs(expected[i]), 1e-3 * largest);
    EXPECT_NEAR(actual[i], expected[i], rel * scale) << what << " block " << i;
  }
}

// Loads a model once per test suite; cheap enough for the small models here.
CausalLm LoadOrDie(const std::filesystem::path& dir, RuntimeOptions options = {}) {
  absl::StatusOr<CausalLm> lm = CausalLm::Load(dir, options);
  EXPECT_TRUE(lm.ok()) << lm.status();
  return *std::move(lm);
}

// A ragged batch computes what each prompt computes alone: logits, greedy
// tokens and captured statistics.
void ExpectRaggedBatchMatchesOneByOne(const CausalLm& lm,
                                      const std::vector<std::vector<int32_t>>& prompts,
                                      double logit_tolerance) {
  absl::StatusOr<BlockStats> batch_stats = BlockStats::Create(lm.config().stats_shape());
  absl::StatusOr<BlockStats> single_stats = BlockStats::Create(lm.config().stats_shape());
  ASSERT_TRUE(batch_stats.ok() && single_stats.ok());
  absl::StatusOr<ForwardResult> batch =
      lm.Forward(prompts, {.capture = &*batch_stats, .compute_nll = true});
  ASSERT_TRUE(batch.ok()) << batch.status();
  absl::StatusOr<std::vector<std::vector<int32_t>>> batch_tokens =
      lm.Generate(prompts, {.max_new_tokens = 12, .stop_at_eos = false});
  ASSERT_TRUE(batch_tokens.ok()) << batch_tokens.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    absl::StatusOr<ForwardResult> single =
        lm.Forward({prompts[i]}, {.capture = &*single_stats, .compute_nll = true});
    ASSERT_TRUE(single.ok()) << single.status();
    const std::vector<float>& a = batch->last_logits[i];
    const std::vector<float>& b = single->last_logits[0];
    ASSERT_EQ(a.size(), b.size());
    for (size_t v = 0; v < a.size(); ++v) {
      ASSERT_NEAR(a[v], b[v], logit_tolerance) << "prompt " << i << " logit " << v;
    }
    if (prompts[i].size() > 1) {
      EXPECT_NEAR(batch->mean_nll[i], single->mean_nll[0], 1e-4) << "prompt " << i;
    } else {
      EXPECT_TRUE(std::isnan(batch->mean_nll[i]));
    }
    absl::StatusOr<std::vector<std::vector<int32_t>>> single_tokens =
        lm.Generate({prompts[i]}, {.max_new_tokens = 12, .stop_at_eos = false});
    ASSERT_TRUE(single_tokens.ok()) << single_tokens.status();
    EXPECT_EQ((*batch_tokens)[i], (*single_tokens)[0]) << "prompt " << i;
  }
  // Padding is not counted: same rows, same sums up to summation order.
  const StatsShape shape = lm.config().stats_shape();
  for (int l = 0; l < shape.num_layers; ++l) {
    for (int h = 0; h < shape.num_kv_heads; ++h) {
      EXPECT_EQ(batch_stats->q_rows(l, h), single_stats->q_rows(l, h));
      EXPECT_EQ(batch_stats->k_tokens(l, h), single_stats->k_tokens(l, h));
      ExpectEnergiesNear(batch_stats->MeanQ(l, h), single_stats->MeanQ(l, h), 1e-5, "q");
      ExpectEnergiesNear(batch_stats->MeanK(l, h), single_stats->MeanK(l, h), 1e-5, "k");
    }
  }
}

// The reference checks run on every device this build can reach: "cpu"
// always, "cuda" where LibTorch has CUDA and the machine a GPU (else skipped).
class ReferenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  // The model in ../shared at `relative` on the test's device; nullopt (and the
  // test skipped) when the material or the device is absent.
  std::optional<CausalLm> Load(const std::string& relative) {
    const std::optional<std::filesystem::path> dir = model_test::SharedPath(relative);
    if (!dir) return std::nullopt;
    absl::StatusOr<CausalLm> lm = CausalLm::Load(*dir, {.device = GetParam()});
    if (absl::IsUnavailable(lm.status())) return std::nullopt;
    EXPECT_TRUE(lm.ok()) << lm.status();
    if (!lm.ok()) return std::nullopt;
    return *std::move(lm);
  }
};

#define KVPLAN_LOAD_OR_SKIP(var, relative)      \
  std::optional<CausalLm> var = Load(relative); \
  if (!var)                                     \
  GTEST_SKIP() << "../shared/" << (relative) << " or device " << GetParam() << " is absent; skipped"

INSTANTIATE_TEST_SUITE_P(Devices, ReferenceTest, ::testing::Values("cpu", "cuda"));

TEST_P(ReferenceTest, DocLlamaGreedyMatchesReference) {
  KVPLAN_REQUIRE_SHARED(vectors, "reference/doc-llama-h64.vectors.json");
  KVPLAN_LOAD_OR_SKIP(lm, "models/doc-llama-h64");
  const json greedy = ReadJson(vectors)["greedy"];
  EXPECT_THAT(lm->device(), HasSubstr(GetParam()));
  const std::vector<int32_t> prompt = Ids(greedy["prompt_ids"]);
  const std::vector<int32_t> expected = Ids(greedy["output_ids"]);
  absl::StatusOr<std::vector<std::vector<int32_t>>> out =
      lm->Generate({prompt}, {.max_new_tokens = greedy["max_new_tokens"].get<int>()});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), (*out)[0].begin(), (*out)[0].end());
  EXPECT_EQ(full, expected);
}

TEST_P(ReferenceTest, DocLlamaForwardMatchesReference) {
  KVPLAN_REQUIRE_SHARED(vectors, "reference/doc-llama-h64.vectors.json");
  KVPLAN_LOAD_OR_SKIP(lm, "models/doc-llama-h64");
  const json reference = ReadJson(vectors);
  const json& forward = reference["forward"];
  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm->config().stats_shape());
  ASSERT_TRUE(stats.ok());
  const std::vector<int32_t> ids = Ids(forward["input_ids"]);
  absl::StatusOr<ForwardResult> result =
      lm->Forward({ids}, {.capture = &*stats, .compute_nll = true});
  ASSERT_TRUE(result.ok()) << result.status();

  // Last-position logits: the reference's top 10, in order and in value.
  const std::vector<float>& logits = result->last_logits[0];
  ASSERT_EQ(logits.size(), 4096u);
  const std::vector<int> top_ids = forward["last_top10_ids"].get<std::vector<int>>();
  const std::vector<double> top_logits = forward["last_top10_logits"].get<std::vector<double>>();
  std::vector<int> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::partial_sort(order.begin(), order.begin() + 10, order.end(),
                    [&](int a, int b) { return logits[a] > logits[b]; });
  EXPECT_EQ(std::vector<int>(order.begin(), order.begin() + 10), top_ids);
  for (size_t i = 0; i < top_ids.size(); ++i) {
    EXPECT_NEAR(logits[top_ids[i]], top_logits[i], 1e-4) << "logit of id " << top_ids[i];
  }
  EXPECT_NEAR(result->mean_nll[0], forward["mean_nll"].get<double>(), 1e-4);

  // Per-block energies: mean over positions, q over every head of the group.
  EXPECT_EQ(stats->tokens(), ids.size());
  for (const auto& [key, energy] : reference["block_energy"].items()) {
    const int layer = std::stoi(key.substr(0, key.find('.')));
    const int head = std::stoi(key.substr(key.find('.') + 1));
    EXPECT_EQ(stats->q_rows(layer, head), ids.size() * 3);
    ExpectEnergiesNear(stats->MeanQ(layer, head), energy["q_energy"].get<std::vector<double>>(),
                       1e-3, "q " + key);
    ExpectEnergiesNear(stats->MeanK(layer, head), energy["k_energy"].get<std::vector<double>>(),
                       1e-3, "k " + key);
  }
}

TEST_P(ReferenceTest, Stories260KMatchesReference) {
  KVPLAN_REQUIRE_SHARED(model, "models/stories260K/hf");
  KVPLAN_LOAD_OR_SKIP(lm, "models/stories260K/hf");
  const json reference = ReadJson(model / "reference.json");
  // An fp32 checkpoint computed in fp32 on the CPU is read straight from the mapping.
  EXPECT_EQ(lm->weights_mapped(), GetParam() == "cpu");
  const std::vector<int32_t> prompt = Ids(reference["prompt_token_ids"]);
  const std::vector<int32_t> expected = Ids(reference["greedy_token_ids"]);
  absl::StatusOr<std::vector<std::vector<int32_t>>> out =
      lm->Generate({prompt}, {.max_new_tokens = static_cast<int>(expected.size() - prompt.size())});
  ASSERT_TRUE(out.ok()) << out.status();
  std::vector<int32_t> full = prompt;
  full.insert(full.end(), (*out)[0].begin(), (*out)[0].end());
  EXPECT_EQ(full, expected);

  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm->config().stats_shape());
  ASSERT_TRUE(stats.ok());
  ASSERT_TRUE(lm->Forward({expected}, {.capture = &*stats}).ok());
  const json& energy = reference["block_energy"];
  ASSERT_EQ(energy.size(), 5u);
  for (int layer = 0; layer < 5; ++layer) {
    ASSERT_EQ(energy[layer].size(), 4u);
    for (int head = 0; head < 4; ++head) {
      const std::string what = absl::StrCat("layer ", layer, " head ", head);
      ExpectEnergiesNear(stats->MeanQ(layer, head),
                         energy[layer][head]["q_energy"].get<std::vector<double>>(), 1e-3,
                         "q " + what);
      ExpectEnergiesNear(stats->MeanK(layer, head),
                         energy[layer][head]["k_energy"].get<std::vector<double>>(), 1e-3,
                         "k " + what);
    }
  }
}

TEST_P(ReferenceTest, DocLlamaRaggedBatchEqualsOneByOne) {
  KVPLAN_LOAD_OR_SKIP(lm, "models/doc-llama-h64");
  ExpectRaggedBatchMatchesOneByOne(
      *lm, {{0, 407, 3601, 3248, 266}, {17}, {0, 41, 1034, 80, 13, 1822, 2, 88, 91, 100, 5, 6, 7}},
      1e-3);
}

// The code paths the shared models do not exercise: explicit head_dim, q/k/v
// bias (Qwen2), per-head q/k RMSNorm (Qwen3), separate lm_head, BF16 weights.
TEST(CausalLmTest, TinyFamiliesRunRaggedBatches) {
  for (const std::string arch : {"Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}) {
    SCOPED_TRACE(arch);
    const std::filesystem::path dir = MakeTestDir() / arch;
    std::filesystem::create_directories(dir);
    WriteTinyModel(dir, TinyConfig(arch), /*bf16=*/arch == "Qwen3ForCausalLM");
    CausalLm lm = LoadOrDie(dir);
    EXPECT_FALSE(lm.weights_mapped() && arch == "Qwen3ForCausalLM");
    ExpectRaggedBatchMatchesOneByOne(lm, {{1, 5, 9, 13, 4, 4, 30}, {1, 22}, {7}}, 1e-4);
  }
}

TEST(CausalLmTest, Bf16ComputeRuns) {
  KVPLAN_REQUIRE_SHARED(model, "models/stories260K/hf");
  absl::StatusOr<CausalLm> lm = CausalLm::Load(model, {.dtype = ComputeDType::kBF16});
  if (absl::IsUnimplemented(lm.status())) GTEST_SKIP() << lm.status();
  ASSERT_TRUE(lm.ok()) << lm.status();
  EXPECT_EQ(lm->dtype(), ComputeDType::kBF16);
  EXPECT_FALSE(lm->weights_mapped());
  absl::StatusOr<std::vector<std::vector<int32_t>>> out =
      lm->Generate({{1, 403, 407, 261, 378}}, {.max_new_tokens = 4});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[0].size(), 4u);
}

TEST(CausalLmTest, RefusesBadInputs) {
  KVPLAN_REQUIRE_SHARED(model, "models/stories260K/hf");
  CausalLm lm = LoadOrDie(model);
  absl::StatusOr<ForwardResult> result = lm.Forward({});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  result = lm.Forward({{1, 2}, {}});
  EXPECT_THAT(result.status().message(), HasSubstr("sequence 1 of the batch is empty"));
  result = lm.Forward({{1, 512}});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), AllOf(HasSubstr("token 1"), HasSubstr("512")));
  result = lm.Forward({std::vector<int32_t>(513, 1)});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("max_position_embeddings"));
  absl::StatusOr<std::vector<std::vector<int32_t>>> out =
      lm.Generate({std::vector<int32_t>(500, 1)}, {.max_new_tokens = 20});
  EXPECT_THAT(out.status().message(),
              AllOf(HasSubstr("500 tokens + 20 to generate"), HasSubstr("512 positions")));
  absl::StatusOr<BlockStats> wrong = BlockStats::Create({1, 1, 1, 1});
  ASSERT_TRUE(wrong.ok());
  result = lm.Forward({{1, 2}}, {.capture = &*wrong});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(wrong->tokens(), 0u);
}

TEST(CausalLmTest, RefusesBadDeviceAndDtype) {
  KVPLAN_REQUIRE_SHARED(model, "models/stories260K/hf");
  absl::StatusOr<CausalLm> lm = CausalLm::Load(model, {.device = "tpu:7"});
  EXPECT_EQ(lm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(lm.status().message(), HasSubstr("tpu:7"));
  lm = CausalLm::Load(model, {.device = "cuda:63"});
  EXPECT_EQ(lm.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(lm.status().message(), HasSubstr("cuda:63"));
  EXPECT_EQ(ParseComputeDType("fp8").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CausalLmTest, LoadReportsMalformedCheckpoints) {
  const std::filesystem::path dir = MakeTestDir();
  json config = TinyConfig("LlamaForCausalLM");
  WriteTinyModel(dir, config);
  // Truncated weights.
  std::string weights = ReadBytes(dir / "model.safetensors");
  WriteBytes(dir / "model.safetensors", weights.substr(0, weights.size() / 2));
  absl::StatusOr<CausalLm> lm = CausalLm::Load(dir);
  EXPECT_EQ(lm.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(lm.status().message(), AllOf(HasSubstr("model.safetensors"), HasSubstr("truncated")));
  WriteBytes(dir / "model.safetensors", weights);
  // Config missing a field; unsupported architecture.
  config.erase("intermediate_size");
  WriteBytes(dir / "config.json", config.dump());
  lm = CausalLm::Load(dir);
  EXPECT_EQ(lm.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(lm.status().message(), HasSubstr("missing field 'intermediate_size'"));
  config = TinyConfig("FalconForCausalLM");
  WriteBytes(dir / "config.json", config.dump());
  lm = CausalLm::Load(dir);
  EXPECT_EQ(lm.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(lm.status().message(), HasSubstr("FalconForCausalLM"));
}

}  // namespace
}  // namespace kvplan
