#include "worker/model/tensor_manifest.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kvplan {

std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(config.num_heads) * config.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(config.num_kv_heads) * config.head_dim;
  const int64_t inter = config.intermediate_size;
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {config.vocab_size, hidden}});
  for (int layer = 0; layer < config.num_layers; ++layer) {
    const std::string p = absl::StrCat("model.layers.", layer, ".");
    out.push_back({p + "input_layernorm.weight", {hidden}});
    out.push_back({p + "self_attn.q_proj.weight", {q_dim, hidden}});
    out.push_back({p + "self_attn.k_proj.weight", {kv_dim, hidden}});
    out.push_back({p + "self_attn.v_proj.weight", {kv_dim, hidden}});
    if (config.qkv_bias) {
      out.push_back({p + "self_attn.q_proj.bias", {q_dim}});
      out.push_back({p + "self_attn.k_proj.bias", {kv_dim}});
      out.push_back({p + "self_attn.v_proj.bias", {kv_dim}});
    }
    if (config.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {config.head_dim}});
      out.push_back({p + "self_attn.k_norm.weight", {config.head_dim}});
    }
    out.push_back({p + "self_attn.o_proj.weight", {hidden, q_dim}});
    if (config.o_proj_bias) out.push_back({p + "self_attn.o_proj.bias", {hidden}});
    out.push_back({p + "post_attention_layernorm.weight", {hidden}});
    out.push_back({p + "mlp.gate_proj.weight", {inter, hidden}});
    out.push_back({p + "mlp.up_proj.weight", {inter, hidden}});
    out.push_back({p + "mlp.down_proj.weight", {hidden, inter}});
    if (config.mlp_bias) {
      out.push_back({p + "mlp.gate_proj.bias", {inter}});
      out.push_back({p + "mlp.up_proj.bias", {inter}});
      out.push_back({p + "mlp.down_proj.bias", {hidden}});
    }
  }
  out.push_back({"model.norm.weight", {hidden}});
  if (!config.tie_word_embeddings) out.push_back({"lm_head.weight", {config.vocab_size, hidden}});
  return out;
}

absl::Status CheckTensors(const ModelConfig& config, const Checkpoint& checkpoint) {
  for (const ExpectedTensor& expected : ExpectedTensors(config)) {
    const TensorView* view = checkpoint.Find(expected.name);
    if (view == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "checkpoint %s has no tensor '%s' (%s with %d layers expects it, shape %s)",
          checkpoint.dir().string(), expected.name, ArchitectureName(config.architecture),
          config.num_layers, DimsString(expected.shape)));
    }
    if (view->shape != expected.shape) {
      return absl::InvalidArgumentError(
          absl::StrFormat("checkpoint %s: tensor '%s' has shape %s, config.json implies %s",
                          checkpoint.dir().string(), expected.name, DimsString(view->shape),
                          DimsString(expected.shape)));
    }
    if (view->dtype == DType::kOther) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "checkpoint %s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16",
          checkpoint.dir().string(), expected.name, view->dtype_name));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvplan
