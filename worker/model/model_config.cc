#include "worker/model/model_config.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvplan {
namespace {

using nlohmann::json;

struct ArchitectureInfo {
  const char* class_name;
  const char* model_type;
  Architecture architecture;
  // Hugging Face's default for max_position_embeddings in that config class.
  int default_max_positions;
};

constexpr ArchitectureInfo kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Architecture::kLlama, 2048},
    {"MistralForCausalLM", "mistral", Architecture::kMistral, 4096 * 32},
    {"Qwen2ForCausalLM", "qwen2", Architecture::kQwen2, 32768},
    {"Qwen3ForCausalLM", "qwen3", Architecture::kQwen3, 32768},
};

constexpr char kSupported[] =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM";

absl::Status Missing(const char* key) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: missing field '", key, "'"));
}

absl::Status WrongType(const char* key, const json& value, const char* expected) {
  return absl::InvalidArgumentError(
      absl::StrCat("config.json: field '", key, "' must be ", expected, ", got ", value.dump()));
}

// A positive integer field; `fallback` when absent or null, or an error naming it
// when there is no fallback.
absl::StatusOr<int> PositiveInt(const json& config, const char* key,
                                std::optional<int> fallback = std::nullopt) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) {
    if (fallback.has_value()) return *fallback;
    return Missing(key);
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 ||
      it->get<int64_t>() > std::numeric_limits<int>::max()) {
    return WrongType(key, *it, "a positive integer");
  }
  return it->get<int>();
}

absl::StatusOr<bool> Bool(const json& config, const char* key, bool fallback) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return WrongType(key, *it, "true or false");
  return it->get<bool>();
}

absl::StatusOr<const ArchitectureInfo*> FindArchitecture(const json& config) {
  auto it = config.find("architectures");
  if (it != config.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_string()) {
      return WrongType("architectures", *it, "a non-empty list of class names");
    }
    const std::string name = (*it)[0].get<std::string>();
    for (const ArchitectureInfo& info : kArchitectures) {
      if (name == info.class_name) return &info;
    }
    return absl::UnimplementedError(
        absl::StrCat("architecture '", name, "' is not supported; supported: ", kSupported));
  }
  auto type_it = config.find("model_type");
  if (type_it == config.end() || !type_it->is_string()) return Missing("architectures");
  const std::string type = type_it->get<std::string>();
  for (const ArchitectureInfo& info : kArchitectures) {
    if (type == info.model_type) return &info;
  }
  return absl::UnimplementedError(
      absl::StrCat("model_type '", type, "' is not supported; supported: ", kSupported));
}

// eos_token_id is an id or a list of ids.
absl::StatusOr<std::vector<int32_t>> TokenIds(const json& config, const char* key) {
  std::vector<int32_t> ids;
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return ids;
  const json list = it->is_array() ? *it : json::array({*it});
  for (const json& id : list) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return WrongType(key, *it, "a token id or a list of token ids");
    }
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

}  // namespace

std::string_view ArchitectureName(Architecture architecture) {
  for (const ArchitectureInfo& info : kArchitectures) {
    if (info.architecture == architecture) return info.class_name;
  }
  return "unknown";
}

absl::StatusOr<ModelConfig> ModelConfigFromHf(const json& config) {
  if (!config.is_object()) return absl::InvalidArgumentError("config.json is not a JSON object");
  absl::StatusOr<const ArchitectureInfo*> arch = FindArchitecture(config);
  if (!arch.ok()) return arch.status();

  ModelConfig out;
  out.architecture = (*arch)->architecture;
  // Read in a fixed order so that the first missing field is the one reported.
  struct IntField {
    const char* key;
    int* target;
  };
  for (const IntField& field :
       {IntField{"num_hidden_layers", &out.num_layers}, IntField{"hidden_size", &out.hidden_size},
        IntField{"num_attention_heads", &out.num_heads},
        IntField{"intermediate_size", &out.intermediate_size},
        IntField{"vocab_size", &out.vocab_size}}) {
    absl::StatusOr<int> value = PositiveInt(config, field.key);
    if (!value.ok()) return value.status();
    *field.target = *value;
  }
  absl::StatusOr<int> kv_heads = PositiveInt(config, "num_key_value_heads", out.num_heads);
  if (!kv_heads.ok()) return kv_heads.status();
  out.num_kv_heads = *kv_heads;
  if (out.num_heads % out.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config.json: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
        out.num_heads, out.num_kv_heads));
  }
  if (out.hidden_size % out.num_heads != 0 && !config.contains("head_dim")) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config.json: no head_dim, and hidden_size (%d) is not a multiple of "
                        "num_attention_heads (%d)",
                        out.hidden_size, out.num_heads));
  }
  absl::StatusOr<int> head_dim = PositiveInt(config, "head_dim", out.hidden_size / out.num_heads);
  if (!head_dim.ok()) return head_dim.status();
  out.head_dim = *head_dim;
  if (out.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: head_dim must be even for RoPE, got ", out.head_dim));
  }
  absl::StatusOr<int> max_positions =
      PositiveInt(config, "max_position_embeddings", (*arch)->default_max_positions);
  if (!max_positions.ok()) return max_positions.status();
  out.max_position_embeddings = *max_positions;

  if (auto it = config.find("rms_norm_eps"); it != config.end() && !it->is_null()) {
    if (!it->is_number() || !(it->get<double>() > 0.0)) {
      return WrongType("rms_norm_eps", *it, "a positive number");
    }
    out.rms_norm_eps = it->get<double>();
  }
  if (auto it = config.find("hidden_act"); it != config.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "silu") {
      return absl::UnimplementedError(absl::StrCat("config.json: hidden_act ", it->dump(),
                                                   " is not supported; supported: \"silu\""));
    }
  }

  absl::StatusOr<bool> tie = Bool(config, "tie_word_embeddings", false);
  absl::StatusOr<bool> attention_bias = Bool(config, "attention_bias", false);
  absl::StatusOr<bool> mlp_bias = Bool(config, "mlp_bias", false);
  absl::StatusOr<bool> use_sliding = Bool(config, "use_sliding_window", false);
  for (const auto* st : {&tie, &attention_bias, &mlp_bias, &use_sliding}) {
    if (!st->ok()) return st->status();
  }
  out.tie_word_embeddings = *tie;
  switch (out.architecture) {
    case Architecture::kLlama:
      out.qkv_bias = out.o_proj_bias = *attention_bias;
      out.mlp_bias = *mlp_bias;
      break;
    case Architecture::kMistral:
      break;
    case Architecture::kQwen2:
      out.qkv_bias = true;
      break;
    case Architecture::kQwen3:
      out.qkv_bias = out.o_proj_bias = *attention_bias;
      out.qk_norm = true;
      break;
  }
  if (out.architecture == Architecture::kMistral) {
    // Mistral's config class defaults the window to 4096; null turns it off.
    auto it = config.find("sliding_window");
    if (it == config.end()) {
      out.sliding_window = 4096;
    } else if (!it->is_null()) {
      absl::StatusOr<int> window = PositiveInt(config, "sliding_window");
      if (!window.ok()) return window.status();
      out.sliding_window = *window;
    }
  } else if (*use_sliding) {
    return absl::UnimplementedError(absl::StrFormat(
        "config.json: use_sliding_window is not supported for %s", (*arch)->class_name));
  }

  absl::StatusOr<std::vector<int32_t>> bos = TokenIds(config, "bos_token_id");
  if (!bos.ok()) return bos.status();
  if (!bos->empty()) out.bos_token_id = bos->front();
  absl::StatusOr<std::vector<int32_t>> eos = TokenIds(config, "eos_token_id");
  if (!eos.ok()) return eos.status();
  out.eos_token_ids = *std::move(eos);

  absl::StatusOr<RopeSpec> rope = RopeSpecFromHfConfig(config);
  if (!rope.ok()) {
    return absl::Status(rope.status().code(),
                        absl::StrCat("config.json: ", std::string(rope.status().message())));
  }
  if (absl::Status valid = rope->Validate(); !valid.ok()) {
    return absl::Status(valid.code(), absl::StrCat("config.json: ", std::string(valid.message())));
  }
  if (rope->style != RopeStyle::kSplitHalf || rope->head_dim != out.head_dim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config.json: RoPE layout %s over head_dim %d does not match %s (split-half over %d)",
        RopeStyleName(rope->style), rope->head_dim, (*arch)->class_name, out.head_dim));
  }
  out.rope = *std::move(rope);
  return out;
}

}  // namespace kvplan
