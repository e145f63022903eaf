// The shape of a Llama-family decoder, read from a Hugging Face config.json.
//
// Covers the architectures whose attention is "RoPE on q and k, GQA, RMSNorm,
// SiLU-gated MLP": Llama (1–3.x), Mistral, Qwen2/2.5 (q/k/v bias) and Qwen3
// (per-head RMSNorm on q and k). Anything else is refused by name, so a model
// that would compute something different never runs silently wrong.
//
// Example:
//   absl::StatusOr<ModelConfig> config = ModelConfigFromHf(checkpoint.config());
//   // doc-llama-h64: config->num_layers == 6, num_kv_heads == 2, head_dim == 64,
//   // config->rope.style == RopeStyle::kSplitHalf
#ifndef KVPLAN_WORKER_MODEL_MODEL_CONFIG_H_
#define KVPLAN_WORKER_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/block_stats.h"
#include "core/rope.h"
#include "nlohmann/json_fwd.hpp"

namespace kvplan {

enum class Architecture { kLlama, kMistral, kQwen2, kQwen3 };

// "LlamaForCausalLM", ...
std::string_view ArchitectureName(Architecture architecture);

struct ModelConfig {
  Architecture architecture = Architecture::kLlama;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  // Per head; explicit in the config for models where it is not hidden/heads.
  int head_dim = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int vocab_size = 0;
  // Positions the model was trained for; longer prompts are refused.
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  // lm_head shares the embedding matrix.
  bool tie_word_embeddings = false;
  // q_proj/k_proj/v_proj carry a bias (Qwen2 always; Llama/Qwen3 with attention_bias).
  bool qkv_bias = false;
  // o_proj carries a bias (Llama/Qwen3 attention_bias).
  bool o_proj_bias = false;
  // gate/up/down projections carry a bias (Llama mlp_bias).
  bool mlp_bias = false;
  // RMSNorm over head_dim on every q and k head before RoPE (Qwen3).
  bool qk_norm = false;
  // Keys further back than this many positions are not attended (Mistral); 0: no window.
  int sliding_window = 0;
  std::optional<int32_t> bos_token_id;
  // Generation stops at any of these.
  std::vector<int32_t> eos_token_ids;
  RopeSpec rope;

  // Query heads per KV head.
  int group_size() const { return num_heads / num_kv_heads; }
  // The statistics shape calibration fills for this model.
  StatsShape stats_shape() const {
    return {.num_layers = num_layers,
            .num_kv_heads = num_kv_heads,
            .num_blocks = head_dim / 2,
            .group_size = group_size()};
  }
};

// Reads a config.json object. Errors:
//   Unimplemented: an architecture other than the four above (named, with the
//     supported list), an activation other than SiLU, Qwen's sliding-window
//     attention, or a RoPE scaling core does not support;
//   InvalidArgument: a required field missing or of the wrong type (named), or
//     inconsistent sizes (heads not a multiple of KV heads, odd head_dim, ...).
// Fields with a Hugging Face default (num_key_value_heads, head_dim,
// rms_norm_eps, attention_bias, tie_word_embeddings, ...) take that default.
absl::StatusOr<ModelConfig> ModelConfigFromHf(const nlohmann::json& config);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_MODEL_CONFIG_H_
