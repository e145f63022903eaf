// Writes small random Llama-family checkpoints for tests: the tensors the
// manifest expects for a config, filled from a fixed seed.
#ifndef KVPLAN_TESTS_WORKER_MODEL_TINY_MODEL_H_
#define KVPLAN_TESTS_WORKER_MODEL_TINY_MODEL_H_

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/worker/model/test_util.h"
#include "worker/model/model_config.h"
#include "worker/model/tensor_manifest.h"

namespace kvplan::model_test {

// A config of `architecture` with 2 layers, 4 query / 2 KV heads of dim 8 and
// an explicit head_dim different from hidden/heads.
inline nlohmann::json TinyConfig(const std::string& architecture) {
  return {{"architectures", {architecture}},
          {"hidden_size", 24},
          {"intermediate_size", 40},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"head_dim", 8},
          {"vocab_size", 50},
          {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2}};
}

// Writes config.json and model.safetensors (BF16 when `bf16`) into `dir`.
inline void WriteTinyModel(const std::filesystem::path& dir, const nlohmann::json& config,
                           bool bf16 = false, unsigned seed = 7) {
  absl::StatusOr<ModelConfig> parsed = ModelConfigFromHf(config);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<TestTensor> tensors;
  for (const ExpectedTensor& expected : ExpectedTensors(*parsed)) {
    int64_t n = 1;
    for (int64_t dim : expected.shape) n *= dim;
    const bool is_norm = expected.name.find("norm") != std::string::npos;
    const bool is_bias = expected.name.find(".bias") != std::string::npos;
    std::vector<float> values(n);
    for (float& v : values) {
      v = is_norm ? 1.0f + 0.1f * normal(rng) : (is_bias ? 0.5f : 0.2f) * normal(rng);
    }
    tensors.push_back({.name = expected.name,
                       .dtype = bf16 ? "BF16" : "F32",
                       .shape = expected.shape,
                       .bytes = bf16 ? BF16Bytes(values) : F32Bytes(values)});
  }
  WriteBytes(dir / "config.json", config.dump(2));
  WriteBytes(dir / "model.safetensors", SafetensorsBytes(tensors));
}

}  // namespace kvplan::model_test

#endif  // KVPLAN_TESTS_WORKER_MODEL_TINY_MODEL_H_
