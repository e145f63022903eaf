// Perplexity through the packed KV cache on doc-llama-h64 (skipped without
// ../shared), and the `kvplan-worker ppl` verb.
#include "worker/eval/perplexity.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/energy_table.h"
#include "core/plan.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/model/test_util.h"
#include "worker/eval/packed_cache_backend.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/prompt_file.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan {
namespace {

using ::kvplan::model_test::MakeTestDir;
using ::kvplan::model_test::ReadBytes;
using ::kvplan::model_test::RunWorker;
using ::kvplan::model_test::WorkerRun;
using ::kvplan::model_test::WriteBytes;
using ::testing::HasSubstr;

// Windows of `length` tokens from the first prompts of `file`, joined by EOS
// as `kvplan-worker ppl` joins them.
std::vector<std::vector<int32_t>> PromptWindows(const std::filesystem::path& model,
                                                const std::filesystem::path& file, int count,
                                                int length) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(model);
  absl::StatusOr<std::vector<Prompt>> prompts = ReadPromptFile(file);
  EXPECT_TRUE(tokenizer.ok() && prompts.ok());
  std::vector<int32_t> ids;
  for (const Prompt& p : *prompts) {
    if (!ids.empty()) ids.push_back(*(*tokenizer)->eos_id());
    absl::StatusOr<std::vector<int32_t>> encoded = (*tokenizer)->Encode(*p.text(), false);
    ids.insert(ids.end(), encoded->begin(), encoded->end());
    if (ids.size() >= static_cast<size_t>(count) * length) break;
  }
  std::vector<std::vector<int32_t>> windows;
  for (int w = 0; w < count; ++w) {
    windows.emplace_back(ids.begin() + w * length, ids.begin() + (w + 1) * length);
  }
  return windows;
}

KvPlan UniformPlan(const CausalLm& lm, int k_bits, int v_bits) {
  const ModelConfig& c = lm.config();
  nlohmann::json scores = nlohmann::json::object();
  for (int l = 0; l < c.num_layers; ++l) {
    for (int h = 0; h < c.num_kv_heads; ++h) {
      scores[absl::StrCat(l, ".", h)] = std::vector<double>(c.head_dim / 2, 1.0);
    }
  }
  absl::StatusOr<KvPlan> plan =
      BuildPlan(*EnergyTableFromJson(scores), c.rope,
                {.k_scheme = KScheme::kUniform, .k_bits = double(k_bits), .v_bits = v_bits});
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

// Block-GTQ from statistics of calibration prompts (disjoint from the eval ones).
KvPlan BlockGtqPlan(const CausalLm& lm, const std::filesystem::path& model,
                    const std::filesystem::path& calib, int k_bits, int v_bits) {
  absl::StatusOr<BlockStats> stats = BlockStats::Create(lm.config().stats_shape());
  EXPECT_TRUE(stats.ok());
  const std::vector<std::vector<int32_t>> windows = PromptWindows(model, calib, 8, 256);
  EXPECT_TRUE(lm.Forward(windows, {.capture = &*stats}).ok());
  absl::StatusOr<KvPlan> plan = BuildPlan(*EnergyTableFromStats(*stats), lm.config().rope,
                                          {.k_bits = double(k_bits), .v_bits = v_bits});
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

class PerplexityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = model_test::SharedPath("models/doc-llama-h64");
    eval_ = model_test::SharedPath("data/eval-prompts.jsonl");
    calib_ = model_test::SharedPath("data/calib-prompts.jsonl");
    if (!model_ || !eval_ || !calib_) {
      GTEST_SKIP() << "../shared/models/doc-llama-h64 or ../shared/data is absent; skipped";
    }
    absl::StatusOr<CausalLm> lm = CausalLm::Load(*model_);
    ASSERT_TRUE(lm.ok()) << lm.status();
    lm_.emplace(*std::move(lm));
    windows_ = PromptWindows(*model_, *eval_, 2, 96);
  }

  double Nll(const KvPlan& plan, const PerplexityOptions& options) {
    absl::StatusOr<PerplexityResult> r = MeasurePerplexity(*lm_, plan, windows_, options);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->tokens_scored, 2 * 95);
    EXPECT_NEAR(r->perplexity, std::exp(r->mean_nll), 1e-9 * r->perplexity);
    return r->mean_nll;
  }

  std::optional<std::filesystem::path> model_, eval_, calib_;
  std::optional<CausalLm> lm_;
  std::vector<std::vector<int32_t>> windows_;
};

// The fp16 cache path (prefill or decode) reproduces the plain forward pass.
// Tolerance: K/V rounded to fp16 (relative 2⁻¹¹) move the mean NLL of these
// windows by ~4e-5 (measured); a wrong position, mask or head mapping moves it
// by > 0.1.
TEST_F(PerplexityTest, Fp16CacheReproducesPlainForward) {
  double plain = 0;
  for (const std::vector<int32_t>& w : windows_) {
    absl::StatusOr<ForwardResult> r = lm_->Forward({w}, {.compute_nll = true});
    ASSERT_TRUE(r.ok()) << r.status();
    plain += r->mean_nll[0] / windows_.size();
  }
  const KvPlan plan = UniformPlan(*lm_, 3, 3);
  const double prefill = Nll(plan, {.prefill_tokens = 96, .cache = Fp16CacheOptions()});
  const double decode = Nll(plan, {.prefill_tokens = 1, .cache = Fp16CacheOptions()});
  EXPECT_NEAR(prefill, plain, 5e-4);
  EXPECT_NEAR(decode, plain, 5e-4);
  RecordProperty("nll",
                 absl::StrFormat("plain %.7f prefill %.7f decode %.7f", plain, prefill, decode));
}

// Prefill and decode read the same packed cache: the same NLL up to the fp32
// noise of batched vs one-token matmuls, which can flip a rare code (measured
// difference 2e-6; K3V3 quantization itself moves the NLL by 0.1).
TEST_F(PerplexityTest, PrefillAndDecodeAgree) {
  const KvPlan plan = UniformPlan(*lm_, 3, 3);
  const double prefill = Nll(plan, {.prefill_tokens = 96});
  const double decode = Nll(plan, {.prefill_tokens = 1});
  const double mixed = Nll(plan, {.prefill_tokens = 40, .cache = {.recent_tokens = 8}});
  EXPECT_NEAR(prefill, decode, 2e-4);
  RecordProperty("nll",
                 absl::StrFormat("prefill %.7f decode %.7f mixed %.7f", prefill, decode, mixed));
  // Reading the newest 8 tokens from fp16 copies removes part of the error.
  EXPECT_LT(mixed, prefill);
}

// K8V8 (Lloyd–Max at 8 bits: ~0.6% RMS error per coordinate) stays within
// 0.02 nats of fp16 (measured: 0.005 on these 190 tokens), while K2V2 moves
// by ~0.14, and Block-GTQ at K2V2 less than uniform TQ-MSE at K2V2 (0.11 vs
// 0.14 here; the full comparison is bench/run_ppl.sh).
TEST_F(PerplexityTest, QualityOrdersByBudget) {
  const double fp16 =
      Nll(UniformPlan(*lm_, 3, 3), {.prefill_tokens = 48, .cache = Fp16CacheOptions()});
  const double k8v8 = Nll(UniformPlan(*lm_, 8, 8), {.prefill_tokens = 48});
  const double uniform2 = Nll(UniformPlan(*lm_, 2, 2), {.prefill_tokens = 48});
  const double gtq2 = Nll(BlockGtqPlan(*lm_, *model_, *calib_, 2, 2), {.prefill_tokens = 48});
  EXPECT_NEAR(k8v8, fp16, 0.02);
  EXPECT_GT(uniform2, fp16 + 0.01);
  EXPECT_LT(std::abs(gtq2 - fp16), std::abs(uniform2 - fp16));
  RecordProperty(
      "nll", absl::StrCat("fp16 ", fp16, " k8v8 ", k8v8, " uniform2 ", uniform2, " gtq2 ", gtq2));
}

TEST_F(PerplexityTest, RefusesMismatchedPlansAndBadOptions) {
  KvPlan plan = UniformPlan(*lm_, 3, 3);
  EXPECT_TRUE(absl::IsInvalidArgument(
      MeasurePerplexity(*lm_, plan, windows_, {.prefill_tokens = 0}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      MeasurePerplexity(*lm_, plan, {std::vector<int32_t>{5}}, {}).status()));
  plan.num_layers = 5;
  const absl::Status wrong = MeasurePerplexity(*lm_, plan, windows_, {}).status();
  EXPECT_THAT(wrong.message(), HasSubstr("5 layers"));
  EXPECT_THAT(wrong.message(), HasSubstr("model has 6"));
}

// The backend refuses a forward pass that does not continue its sequence, and
// the model refuses a batch of two with a backend.
TEST_F(PerplexityTest, BackendChecksTheSequence) {
  absl::StatusOr<PackedKvCache> cache =
      PackedKvCache::Create(UniformPlan(*lm_, 3, 3), lm_->config().num_heads);
  ASSERT_TRUE(cache.ok());
  PackedCacheBackend backend(*std::move(cache));
  const std::vector<int32_t> w(windows_[0].begin(), windows_[0].begin() + 8);
  ASSERT_TRUE(lm_->Forward({w}, {.attention = &backend}).ok());
  const absl::Status gap = lm_->Forward({w}, {.attention = &backend, .start_position = 3}).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(gap)) << gap;
  EXPECT_THAT(gap.message(), HasSubstr("holds 8 tokens"));
  EXPECT_TRUE(absl::IsInvalidArgument(lm_->Forward({w, w}, {.attention = &backend}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(lm_->Forward({w}, {.start_position = 1}).status()));
}

TEST_F(PerplexityTest, CliReportsBothRunsAndChecksTheFingerprint) {
  const WorkerRun run = RunWorker(absl::StrCat(
      "ppl --model ", model_->string(), " --text ", eval_->string(),
      " --uniform-k-bits 4 --v-bits 4 --context 64 --prefill 32 --max-windows 2 --json"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const nlohmann::json out = nlohmann::json::parse(run.out);
  EXPECT_EQ(out["plan"]["k_scheme"], "uniform");
  ASSERT_EQ(out["runs"].size(), 2u);
  EXPECT_EQ(out["runs"][0]["name"], "fp16");
  EXPECT_EQ(out["runs"][0]["tokens_scored"], 126);
  EXPECT_EQ(out["runs"][0]["k_bytes_per_token_head"], 128.0);
  EXPECT_EQ(out["runs"][1]["k_bytes_per_token_head"], 34.0);  // 64·4/8 codes + 2 norm
  EXPECT_GT(out["runs"][1]["perplexity"].get<double>(), 1.0);

  // A plan bound to another model is refused, naming both fingerprints.
  KvPlan plan = UniformPlan(*lm_, 3, 3);
  plan.model_fingerprint = std::string(64, 'a');
  const std::filesystem::path path = MakeTestDir() / "plan.json";
  WriteBytes(path, PlanToJson(plan));
  const WorkerRun refused = RunWorker(absl::StrCat("ppl --model ", model_->string(), " --text ",
                                                   eval_->string(), " --plan ", path.string()));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr(std::string(64, 'a')));
  EXPECT_THAT(refused.err, HasSubstr("has fingerprint"));
}

}  // namespace
}  // namespace kvplan
