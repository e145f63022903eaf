#include "worker/model/model_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/model/test_util.h"
#include "tests/worker/model/tiny_model.h"
#include "worker/model/checkpoint.h"
#include "worker/model/tensor_manifest.h"

namespace kvplan {
namespace {

using ::kvplan::model_test::MakeTestDir;
using ::kvplan::model_test::ReadBytes;
using ::kvplan::model_test::SafetensorsBytes;
using ::kvplan::model_test::TestTensor;
using ::kvplan::model_test::TinyConfig;
using ::kvplan::model_test::WriteBytes;
using ::kvplan::model_test::WriteTinyModel;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(ModelConfigTest, ReadsDocLlama) {
  KVPLAN_REQUIRE_SHARED(dir, "models/doc-llama-h64");
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  absl::StatusOr<ModelConfig> config = ModelConfigFromHf(ckpt->config());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->architecture, Architecture::kLlama);
  EXPECT_EQ(config->num_layers, 6);
  EXPECT_EQ(config->num_heads, 6);
  EXPECT_EQ(config->num_kv_heads, 2);
  EXPECT_EQ(config->group_size(), 3);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->hidden_size, 384);
  EXPECT_EQ(config->intermediate_size, 1024);
  EXPECT_EQ(config->vocab_size, 4096);
  EXPECT_EQ(config->max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_FALSE(config->qkv_bias);
  EXPECT_EQ(config->bos_token_id, 0);
  EXPECT_EQ(config->eos_token_ids, (std::vector<int32_t>{1}));
  EXPECT_EQ(config->rope.style, RopeStyle::kSplitHalf);
  EXPECT_DOUBLE_EQ(config->rope.theta, 1e4);
  EXPECT_EQ(config->stats_shape(),
            (StatsShape{.num_layers = 6, .num_kv_heads = 2, .num_blocks = 32, .group_size = 3}));
  EXPECT_TRUE(CheckTensors(*config, *ckpt).ok());
}

TEST(ModelConfigTest, FamiliesSetBiasAndNorms) {
  absl::StatusOr<ModelConfig> qwen2 = ModelConfigFromHf(TinyConfig("Qwen2ForCausalLM"));
  ASSERT_TRUE(qwen2.ok()) << qwen2.status();
  EXPECT_TRUE(qwen2->qkv_bias);
  EXPECT_FALSE(qwen2->o_proj_bias);
  EXPECT_FALSE(qwen2->qk_norm);
  EXPECT_EQ(qwen2->head_dim, 8);  // Explicit: hidden/heads would be 6.

  absl::StatusOr<ModelConfig> qwen3 = ModelConfigFromHf(TinyConfig("Qwen3ForCausalLM"));
  ASSERT_TRUE(qwen3.ok()) << qwen3.status();
  EXPECT_TRUE(qwen3->qk_norm);
  EXPECT_FALSE(qwen3->qkv_bias);

  nlohmann::json llama = TinyConfig("LlamaForCausalLM");
  llama["attention_bias"] = true;
  llama["eos_token_id"] = {2, 7};
  absl::StatusOr<ModelConfig> biased = ModelConfigFromHf(llama);
  ASSERT_TRUE(biased.ok()) << biased.status();
  EXPECT_TRUE(biased->qkv_bias);
  EXPECT_TRUE(biased->o_proj_bias);
  EXPECT_EQ(biased->eos_token_ids, (std::vector<int32_t>{2, 7}));

  absl::StatusOr<ModelConfig> mistral = ModelConfigFromHf(TinyConfig("MistralForCausalLM"));
  ASSERT_TRUE(mistral.ok()) << mistral.status();
  EXPECT_EQ(mistral->sliding_window, 4096);  // The config class default.
}

TEST(ModelConfigTest, MissingFieldIsNamed) {
  nlohmann::json config = TinyConfig("LlamaForCausalLM");
  config.erase("num_hidden_layers");
  absl::StatusOr<ModelConfig> parsed = ModelConfigFromHf(config);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("missing field 'num_hidden_layers'"));

  config = TinyConfig("LlamaForCausalLM");
  config["vocab_size"] = "many";
  parsed = ModelConfigFromHf(config);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("'vocab_size'"));
}

TEST(ModelConfigTest, UnsupportedArchitectureIsNamed) {
  absl::StatusOr<ModelConfig> parsed = ModelConfigFromHf(TinyConfig("GemmaForCausalLM"));
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(parsed.status().message(),
              AllOf(HasSubstr("'GemmaForCausalLM'"), HasSubstr("LlamaForCausalLM")));

  nlohmann::json gelu = TinyConfig("LlamaForCausalLM");
  gelu["hidden_act"] = "gelu";
  parsed = ModelConfigFromHf(gelu);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(parsed.status().message(), HasSubstr("gelu"));
}

TEST(ModelConfigTest, InconsistentHeadsAreRefused) {
  nlohmann::json config = TinyConfig("LlamaForCausalLM");
  config["num_key_value_heads"] = 3;
  absl::StatusOr<ModelConfig> parsed = ModelConfigFromHf(config);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr("num_key_value_heads"));
}

// Rewrites one tensor of a tiny checkpoint's file.
void ReplaceTensor(const std::filesystem::path& dir, const std::string& name,
                   const TestTensor& replacement) {
  const std::string bytes = ReadBytes(dir / "model.safetensors");
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<TestTensor> tensors;
  for (const std::string& tensor : ckpt->TensorNames()) {
    if (tensor == name) continue;
    const TensorView* view = ckpt->Find(tensor);
    tensors.push_back({.name = tensor,
                       .dtype = view->dtype_name,
                       .shape = view->shape,
                       .bytes = std::string(reinterpret_cast<const char*>(view->bytes.data()),
                                            view->bytes.size())});
  }
  if (!replacement.name.empty()) tensors.push_back(replacement);
  WriteBytes(dir / "model.safetensors", SafetensorsBytes(tensors));
}

// CheckTensors on the checkpoint in `dir` (opened and closed here, so that the
// test may rewrite the file in between).
absl::Status Check(const std::filesystem::path& dir, const ModelConfig& config) {
  absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) return ckpt.status();
  return CheckTensors(config, *ckpt);
}

TEST(TensorManifestTest, NamesMissingMisshapenAndMistypedTensors) {
  const std::filesystem::path dir = MakeTestDir();
  const nlohmann::json json = TinyConfig("Qwen3ForCausalLM");
  WriteTinyModel(dir, json);
  absl::StatusOr<ModelConfig> config = ModelConfigFromHf(json);
  ASSERT_TRUE(config.ok());
  EXPECT_TRUE(Check(dir, *config).ok());

  const std::string k_norm = "model.layers.1.self_attn.k_norm.weight";
  ReplaceTensor(dir, k_norm, {});
  absl::Status st = Check(dir, *config);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), AllOf(HasSubstr("no tensor '" + k_norm + "'"), HasSubstr("[8]")));

  ReplaceTensor(dir, k_norm,
                {.name = k_norm, .dtype = "I32", .shape = {8}, .bytes = std::string(32, '\0')});
  st = Check(dir, *config);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), AllOf(HasSubstr("'" + k_norm + "'"), HasSubstr("dtype I32")));

  ReplaceTensor(
      dir, k_norm,
      {.name = k_norm, .shape = {8}, .bytes = model_test::F32Bytes(std::vector<float>(8, 1.0f))});
  const std::string up = "model.layers.0.mlp.up_proj.weight";
  ReplaceTensor(dir, up,
                {.name = up,
                 .shape = {24, 40},
                 .bytes = model_test::F32Bytes(std::vector<float>(960, 0.0f))});
  st = Check(dir, *config);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(),
              AllOf(HasSubstr("'" + up + "'"), HasSubstr("shape [24, 40]"), HasSubstr("[40, 24]")));
}

}  // namespace
}  // namespace kvplan
