// Llama-family forward pass in LibTorch (ATen only; no torch::nn).
//
// Tensor layout inside the decoder: activations are [batch, tokens, hidden];
// attention keeps the GQA group as its own axis, q as [B, KVH, G, T, hd] and
// k/v as [B, KVH, S, hd], so K/V are never repeated per query head. Query head
// h belongs to KV head h / G, as in Hugging Face's repeat_kv.
//
// Batches are left-padded: every sequence ends in the last column, positions
// count from each sequence's first real token, and padding keys are masked.
// A padding query attends only to itself, so no softmax row is empty (an empty
// row would be NaN, and NaN in padding values leaks into real rows as 0·NaN).
#include "worker/model/transformer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/model/attention_backend.h"
#include "worker/model/checkpoint.h"
#include "worker/model/energy_capture.h"
#include "worker/model/tensor_manifest.h"
#include "worker/model/torch_status.h"

namespace kvplan {
namespace {

using torch_internal::CallTorch;
using torch_internal::EnergyCapture;

at::ScalarType ScalarTypeOf(ComputeDType dtype) {
  switch (dtype) {
    case ComputeDType::kF32:
      return at::kFloat;
    case ComputeDType::kBF16:
      return at::kBFloat16;
    case ComputeDType::kF16:
      return at::kHalf;
  }
  return at::kFloat;
}

at::ScalarType ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kF32:
    case DType::kOther:  // Refused by CheckTensors before loading.
      break;
  }
  return at::kFloat;
}

struct LayerWeights {
  at::Tensor input_norm, post_attention_norm;
  at::Tensor q_weight, q_bias, k_weight, k_bias, v_weight, v_bias, o_weight, o_bias;
  at::Tensor q_norm, k_norm;  // Qwen3 only.
  at::Tensor gate_weight, gate_bias, up_weight, up_bias, down_weight, down_bias;
};

// Hugging Face's RMSNorm: normalize in fp32, cast back, then scale.
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = xf * at::rsqrt(xf.square().mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

// The post-attention half of a decoder layer: RMSNorm, then the SiLU-gated MLP.
at::Tensor Mlp(const at::Tensor& x, const LayerWeights& w, double eps) {
  const at::Tensor h = RmsNorm(x, w.post_attention_norm, eps);
  const at::Tensor gated =
      at::silu(at::linear(h, w.gate_weight, w.gate_bias)) * at::linear(h, w.up_weight, w.up_bias);
  return at::linear(gated, w.down_weight, w.down_bias);
}

// rotate_half over the first `rotary` dims: x·cos + rotate_half(x)·sin; the
// remaining dims (partial rotary) pass through.
at::Tensor ApplyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     int64_t rotary) {
  const int64_t head_dim = x.size(-1);
  const at::Tensor rot = rotary == head_dim ? x : x.narrow(-1, 0, rotary);
  const int64_t half = rotary / 2;
  const at::Tensor rotated =
      at::cat({rot.narrow(-1, half, half).neg(), rot.narrow(-1, 0, half)}, -1);
  at::Tensor out = rot * cos + rotated * sin;
  if (rotary != head_dim) out = at::cat({out, x.narrow(-1, rotary, head_dim - rotary)}, -1);
  return out;
}

// Which keys each query may attend: [B, 1, 1, T, S] bool.
//   key_valid [B, S], key_pos [B, S]: the key columns' realness and positions;
//   query_pos [B, T]: positions of the queries, which sit in columns
//   [offset, offset + T).
at::Tensor AllowedKeys(const at::Tensor& key_valid, const at::Tensor& key_pos,
                       const at::Tensor& query_pos, int64_t offset, int sliding_window) {
  const int64_t batch = key_valid.size(0), keys = key_valid.size(1), queries = query_pos.size(1);
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(key_valid.device());
  const at::Tensor key_cols = at::arange(keys, long_options).view({1, keys});
  const at::Tensor query_cols =
      at::arange(offset, offset + queries, long_options).view({queries, 1});
  at::Tensor allowed = key_cols.le(query_cols).unsqueeze(0).logical_and(key_valid.unsqueeze(1));
  if (sliding_window > 0) {
    allowed =
        allowed.logical_and((query_pos.unsqueeze(2) - key_pos.unsqueeze(1)).lt(sliding_window));
  }
  allowed = allowed.logical_or(key_cols.eq(query_cols).unsqueeze(0));
  return allowed.view({batch, 1, 1, queries, keys});
}

// Left-pads `batch` into host buffers: ids (pad id 0), realness, positions.
struct PaddedBatch {
  int64_t batch = 0, width = 0, real_tokens = 0;
  std::vector<int64_t> ids, positions;
  std::vector<uint8_t> valid;
};

PaddedBatch LeftPad(absl::Span<const std::vector<int32_t>> batch, int64_t width) {
  PaddedBatch out;
  out.batch = static_cast<int64_t>(batch.size());
  out.width = width;
  out.ids.assign(out.batch * width, 0);
  out.positions.assign(out.batch * width, 0);
  out.valid.assign(out.batch * width, 0);
  for (int64_t b = 0; b < out.batch; ++b) {
    const int64_t len = static_cast<int64_t>(batch[b].size());
    const int64_t pad = width - len;
    for (int64_t t = 0; t < len; ++t) {
      out.ids[b * width + pad + t] = batch[b][t];
      out.positions[b * width + pad + t] = t;
      out.valid[b * width + pad + t] = 1;
    }
    out.real_tokens += len;
  }
  return out;
}

template <typename T>
at::Tensor ToDevice(std::vector<T>& host, at::IntArrayRef shape, at::ScalarType type,
                    at::Device device) {
  // copy=true: the result must not alias `host`, which dies with the caller's frame.
  return at::from_blob(host.data(), shape, at::TensorOptions().dtype(type))
      .to(device, type, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

absl::StatusOr<ComputeDType> ParseComputeDType(std::string_view name) {
  if (name == "fp32" || name == "float32") return ComputeDType::kF32;
  if (name == "bf16" || name == "bfloat16") return ComputeDType::kBF16;
  if (name == "fp16" || name == "float16") return ComputeDType::kF16;
  return absl::InvalidArgumentError(
      absl::StrFormat("unknown compute dtype '%s'; expected fp32, bf16 or fp16", name));
}

std::string_view ComputeDTypeName(ComputeDType dtype) {
  switch (dtype) {
    case ComputeDType::kF32:
      return "fp32";
    case ComputeDType::kBF16:
      return "bf16";
    case ComputeDType::kF16:
      return "fp16";
  }
  return "unknown";
}

struct CausalLm::Impl {
  ModelConfig config;
  // Kept only while weights alias its mappings (no conversion at load).
  std::optional<Checkpoint> checkpoint;
  at::Device device{at::kCPU};
  ComputeDType compute_dtype = ComputeDType::kF32;
  at::ScalarType dtype = at::kFloat;
  at::Tensor embed, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  // RoPE angular frequencies as Hugging Face holds them: fp32, [rotary_dim / 2].
  at::Tensor inv_freq;
  double rope_attention_factor = 1.0;
  double attention_scale = 1.0;

  // Fills every weight from `tensor(name)`, which returns it placed on the
  // device in the compute dtype (names and shapes as ExpectedTensors says).
  absl::Status LoadWeights(const std::function<at::Tensor(const std::string&)>& tensor);

  // An Impl for `config` on the requested device and dtype, both probed.
  static absl::StatusOr<std::unique_ptr<Impl>> Prepare(ModelConfig config,
                                                       const RuntimeOptions& options);
  // `extra` positions count against max_position_embeddings besides each
  // sequence's own; `extra_what` says what they are in the message.
  absl::Status CheckBatch(absl::Span<const std::vector<int32_t>> batch, int64_t extra,
                          std::string_view extra_what = "") const;
  // ForwardOptions::attention and start_position: batch 1, no sliding window.
  absl::Status CheckAttentionOptions(absl::Span<const std::vector<int32_t>> batch,
                                     const ForwardOptions& options) const;

  // cos, sin for `positions` [B, T]: [B, T, rotary_dim] in the compute dtype.
  std::pair<at::Tensor, at::Tensor> RopeTables(const at::Tensor& positions) const;

  // Runs the decoder on `ids` [B, T] and returns the final-normed hidden state
  // [B, T, hidden]. With `cache` (per layer [B, KVH, S_max, hd] K and V), the
  // new keys go to columns [offset, offset + T) and attention reads columns
  // [0, offset + T); without, attention reads the new keys alone.
  struct KvCache {
    std::vector<at::Tensor> k, v;
  };
  // With `observe->attention`, attention runs through the backend instead
  // (batch 1, positions continuing from observe->start_position); its errors
  // are returned.
  absl::StatusOr<at::Tensor> Decode(const at::Tensor& ids, const at::Tensor& positions,
                                    const at::Tensor& allowed, KvCache* cache, int64_t offset,
                                    EnergyCapture* capture,
                                    const ForwardOptions* observe = nullptr) const;

  // One layer's attention through `backend`: q [1, KVH, G, T, hd] and k, v
  // [1, KVH, T, hd] go to the host as fp32; the result is [1, T, H·hd] in the
  // compute dtype on the device.
  absl::StatusOr<at::Tensor> AttendExternally(AttentionBackend& backend, int layer, int64_t start,
                                              const at::Tensor& q, const at::Tensor& k,
                                              const at::Tensor& v) const;
};

absl::Status CausalLm::Impl::LoadWeights(
    const std::function<at::Tensor(const std::string&)>& load) {
  auto maybe = [&](bool present, const std::string& name) {
    return present ? load(name) : at::Tensor();
  };
  embed = load("model.embed_tokens.weight");
  layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LayerWeights& w = layers[l];
    w.input_norm = load(p + "input_layernorm.weight");
    w.post_attention_norm = load(p + "post_attention_layernorm.weight");
    w.q_weight = load(p + "self_attn.q_proj.weight");
    w.k_weight = load(p + "self_attn.k_proj.weight");
    w.v_weight = load(p + "self_attn.v_proj.weight");
    w.o_weight = load(p + "self_attn.o_proj.weight");
    w.q_bias = maybe(config.qkv_bias, p + "self_attn.q_proj.bias");
    w.k_bias = maybe(config.qkv_bias, p + "self_attn.k_proj.bias");
    w.v_bias = maybe(config.qkv_bias, p + "self_attn.v_proj.bias");
    w.o_bias = maybe(config.o_proj_bias, p + "self_attn.o_proj.bias");
    w.q_norm = maybe(config.qk_norm, p + "self_attn.q_norm.weight");
    w.k_norm = maybe(config.qk_norm, p + "self_attn.k_norm.weight");
    w.gate_weight = load(p + "mlp.gate_proj.weight");
    w.up_weight = load(p + "mlp.up_proj.weight");
    w.down_weight = load(p + "mlp.down_proj.weight");
    w.gate_bias = maybe(config.mlp_bias, p + "mlp.gate_proj.bias");
    w.up_bias = maybe(config.mlp_bias, p + "mlp.up_proj.bias");
    w.down_bias = maybe(config.mlp_bias, p + "mlp.down_proj.bias");
  }
  final_norm = load("model.norm.weight");
  lm_head = config.tie_word_embeddings ? embed : load("lm_head.weight");

  // Hugging Face keeps inv_freq in fp32 and multiplies by fp32 positions; core
  // gives fp64 frequencies, rounded here once to the same fp32 values.
  const std::vector<double> freqs = config.rope.InvFrequencies();
  std::vector<float> rotary(freqs.begin(), freqs.begin() + config.rope.num_rotary_blocks());
  inv_freq = at::tensor(rotary, at::TensorOptions().dtype(at::kFloat)).to(device);
  rope_attention_factor = config.rope.scaling.type == RopeScalingType::kYarn
                              ? config.rope.scaling.attention_factor
                              : 1.0;
  attention_scale = 1.0 / std::sqrt(static_cast<double>(config.head_dim));
  return absl::OkStatus();
}

absl::Status CausalLm::Impl::CheckBatch(absl::Span<const std::vector<int32_t>> batch, int64_t extra,
                                        std::string_view extra_what) const {
  if (batch.empty()) return absl::InvalidArgumentError("empty batch: no sequences");
  for (size_t b = 0; b < batch.size(); ++b) {
    if (batch[b].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", b, " of the batch is empty"));
    }
    const int64_t needed = static_cast<int64_t>(batch[b].size()) + extra;
    if (needed > config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d has %d tokens%s, more than the model's %d positions "
          "(max_position_embeddings)",
          b, batch[b].size(),
          extra > 0 ? absl::StrFormat(" + %d %s", extra, extra_what) : std::string(),
          config.max_position_embeddings));
    }
    for (size_t t = 0; t < batch[b].size(); ++t) {
      if (batch[b][t] < 0 || batch[b][t] >= config.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("sequence %d, token %d: id %d is outside the vocabulary [0, %d)", b, t,
                            batch[b][t], config.vocab_size));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CausalLm::Impl::CheckAttentionOptions(absl::Span<const std::vector<int32_t>> batch,
                                                   const ForwardOptions& options) const {
  if (options.attention == nullptr) {
    if (options.start_position != 0) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "start_position %d without an attention backend: a forward pass without one sees no "
          "earlier tokens, so it must start at 0",
          options.start_position));
    }
    return absl::OkStatus();
  }
  if (batch.size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "an attention backend caches one sequence; the batch holds %d (run them one by one)",
        batch.size()));
  }
  if (options.start_position < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("start_position %d is negative", options.start_position));
  }
  if (config.sliding_window > 0) {
    return absl::UnimplementedError(
        absl::StrFormat("attention backends do not implement the model's %d-token sliding window",
                        config.sliding_window));
  }
  return absl::OkStatus();
}

std::pair<at::Tensor, at::Tensor> CausalLm::Impl::RopeTables(const at::Tensor& positions) const {
  // fp32 throughout, as Hugging Face computes them (autocast off), then cast.
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;
  const at::Tensor angles = at::cat({freqs, freqs}, -1);
  at::Tensor cos = angles.cos(), sin = angles.sin();
  if (rope_attention_factor != 1.0) {
    cos = cos * rope_attention_factor;
    sin = sin * rope_attention_factor;
  }
  return {cos.to(dtype), sin.to(dtype)};
}

absl::StatusOr<at::Tensor> CausalLm::Impl::AttendExternally(AttentionBackend& backend, int layer,
                                                            int64_t start, const at::Tensor& q,
                                                            const at::Tensor& k,
                                                            const at::Tensor& v) const {
  const int64_t tokens = k.size(2), head_dim = config.head_dim;
  const int64_t q_heads = config.num_heads;
  // [T, KVH, G, hd] flattens to [T, H, hd] with query head h = kv·G + g.
  const at::Tensor q_host =
      q.squeeze(0).permute({2, 0, 1, 3}).to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor k_host = k.squeeze(0).permute({1, 0, 2}).to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor v_host = v.squeeze(0).permute({1, 0, 2}).to(at::kCPU, at::kFloat).contiguous();
  at::Tensor out =
      at::empty({1, tokens, q_heads * head_dim}, at::TensorOptions().dtype(at::kFloat));
  absl::Status status =
      backend.Attend(layer, start, static_cast<int>(tokens),
                     absl::MakeConstSpan(q_host.data_ptr<float>(), q_host.numel()),
                     absl::MakeConstSpan(k_host.data_ptr<float>(), k_host.numel()),
                     absl::MakeConstSpan(v_host.data_ptr<float>(), v_host.numel()),
                     absl::MakeSpan(out.data_ptr<float>(), out.numel()));
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrFormat("attention backend, layer %d: %s", layer,
                                                       std::string(status.message())));
  }
  return out.to(device, dtype);
}

absl::StatusOr<at::Tensor> CausalLm::Impl::Decode(const at::Tensor& ids,
                                                  const at::Tensor& positions,
                                                  const at::Tensor& allowed, KvCache* cache,
                                                  int64_t offset, EnergyCapture* capture,
                                                  const ForwardOptions* observe) const {
  const int64_t batch = ids.size(0), tokens = ids.size(1);
  const int64_t kv_heads = config.num_kv_heads, group = config.group_size();
  const int64_t head_dim = config.head_dim, rotary = config.rope.rotary_dim;
  const double eps = config.rms_norm_eps;
  const at::Tensor blocked = allowed.logical_not();

  auto [cos, sin] = RopeTables(positions);
  const at::Tensor q_cos = cos.view({batch, 1, 1, tokens, rotary});
  const at::Tensor q_sin = sin.view({batch, 1, 1, tokens, rotary});
  const at::Tensor k_cos = cos.view({batch, 1, tokens, rotary});
  const at::Tensor k_sin = sin.view({batch, 1, tokens, rotary});

  at::Tensor x = at::embedding(embed, ids);
  for (int l = 0; l < config.num_layers; ++l) {
    const LayerWeights& w = layers[l];
    const at::Tensor h = RmsNorm(x, w.input_norm, eps);
    at::Tensor q =
        at::linear(h, w.q_weight, w.q_bias).view({batch, tokens, kv_heads, group, head_dim});
    at::Tensor k = at::linear(h, w.k_weight, w.k_bias).view({batch, tokens, kv_heads, head_dim});
    at::Tensor v = at::linear(h, w.v_weight, w.v_bias).view({batch, tokens, kv_heads, head_dim});
    if (config.qk_norm) {
      q = RmsNorm(q, w.q_norm, eps);
      k = RmsNorm(k, w.k_norm, eps);
    }
    if (capture != nullptr) capture->Add(l, q, k);  // The RoPE input.
    if (observe != nullptr && observe->observe_rope_input) {
      const at::Tensor q_host = q.to(at::kCPU, at::kFloat).contiguous();
      const at::Tensor k_host = k.to(at::kCPU, at::kFloat).contiguous();
      observe->observe_rope_input(l, absl::MakeConstSpan(q_host.data_ptr<float>(), q_host.numel()),
                                  absl::MakeConstSpan(k_host.data_ptr<float>(), k_host.numel()));
    }
    q = ApplyRope(q.permute({0, 2, 3, 1, 4}), q_cos, q_sin, rotary);  // [B, KVH, G, T, hd]
    k = ApplyRope(k.permute({0, 2, 1, 3}), k_cos, k_sin, rotary);     // [B, KVH, T, hd]
    v = v.permute({0, 2, 1, 3});
    if (observe != nullptr && observe->attention != nullptr) {
      absl::StatusOr<at::Tensor> attended =
          AttendExternally(*observe->attention, l, observe->start_position, q, k, v);
      if (!attended.ok()) return attended.status();
      x = x + at::linear(*attended, w.o_weight, w.o_bias);
      x = x + Mlp(x, w, eps);
      continue;
    }
    at::Tensor keys = k, values = v;
    if (cache != nullptr) {
      cache->k[l].narrow(2, offset, tokens).copy_(k);
      cache->v[l].narrow(2, offset, tokens).copy_(v);
      keys = cache->k[l].narrow(2, 0, offset + tokens);
      values = cache->v[l].narrow(2, 0, offset + tokens);
    }
    const int64_t key_count = keys.size(2);
    at::Tensor scores =
        at::matmul(q.reshape({batch, kv_heads, group * tokens, head_dim}), keys.transpose(-1, -2))
            .mul(attention_scale)
            .view({batch, kv_heads, group, tokens, key_count})
            .masked_fill(blocked, -std::numeric_limits<float>::infinity());
    // Softmax in fp32, as Hugging Face's eager attention does.
    const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(dtype);
    const at::Tensor attended =
        at::matmul(probs.view({batch, kv_heads, group * tokens, key_count}), values)
            .view({batch, kv_heads, group, tokens, head_dim})
            .permute({0, 3, 1, 2, 4})
            .reshape({batch, tokens, kv_heads * group * head_dim});
    x = x + at::linear(attended, w.o_weight, w.o_bias);
    x = x + Mlp(x, w, eps);
  }
  return RmsNorm(x, final_norm, eps);
}

CausalLm::CausalLm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CausalLm::CausalLm(CausalLm&&) noexcept = default;
CausalLm& CausalLm::operator=(CausalLm&&) noexcept = default;
CausalLm::~CausalLm() = default;

const ModelConfig& CausalLm::config() const { return impl_->config; }
std::string CausalLm::device() const { return impl_->device.str(); }
ComputeDType CausalLm::dtype() const { return impl_->compute_dtype; }
bool CausalLm::weights_mapped() const { return impl_->checkpoint.has_value(); }

absl::StatusOr<std::unique_ptr<CausalLm::Impl>> CausalLm::Impl::Prepare(
    ModelConfig config, const RuntimeOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(config);
  impl->compute_dtype = options.dtype;
  impl->dtype = ScalarTypeOf(options.dtype);

  absl::StatusOr<at::Device> device = CallTorch(
      "device", [&]() -> absl::StatusOr<at::Device> { return at::Device(options.device); });
  if (!device.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device '%s' is not a device; expected cpu, cuda or cuda:N", options.device));
  }
  if (!device->is_cpu() && !device->is_cuda()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "device '%s' is not supported; expected cpu, cuda or cuda:N", options.device));
  }
  if (device->is_cuda() && !at::hasCUDA()) {
    return absl::UnavailableError(absl::StrFormat(
        "device '%s' requested, but this LibTorch has no CUDA or the machine no GPU",
        options.device));
  }
  impl->device = *device;
  c10::InferenceMode inference;
  // Probe the device and the dtype's matmul before converting gigabytes of weights.
  absl::Status probe = CallTorch("device probe", [&]() -> absl::Status {
    at::empty({1}, at::TensorOptions().device(impl->device));
    return absl::OkStatus();
  });
  if (!probe.ok()) {
    return absl::UnavailableError(absl::StrFormat("device '%s' is not usable: %s", options.device,
                                                  std::string(probe.message())));
  }
  probe = CallTorch("dtype probe", [&]() -> absl::Status {
    const at::Tensor a =
        at::ones({2, 2}, at::TensorOptions().device(impl->device).dtype(impl->dtype));
    at::softmax(at::linear(a, a, a.select(0, 0)), -1, at::kFloat);
    return absl::OkStatus();
  });
  if (!probe.ok()) {
    return absl::UnimplementedError(absl::StrFormat(
        "compute dtype %s is not supported on %s by this LibTorch: %s",
        ComputeDTypeName(options.dtype), options.device, std::string(probe.message())));
  }

  return impl;
}

absl::StatusOr<CausalLm> CausalLm::Load(const std::filesystem::path& dir,
                                        const RuntimeOptions& options) {
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<ModelConfig> config = ModelConfigFromHf(checkpoint->config());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(dir.string(), "/", std::string(config.status().message())));
  }
  if (absl::Status st = CheckTensors(*config, *checkpoint); !st.ok()) return st;

  absl::StatusOr<std::unique_ptr<Impl>> impl = Impl::Prepare(*std::move(config), options);
  if (!impl.ok()) return impl.status();
  bool aliased = false;
  const Impl& m = **impl;
  auto mapped = [&](const std::string& name) -> at::Tensor {
    const TensorView* view = checkpoint->Find(name);  // Present: CheckTensors passed.
    void* data = const_cast<uint8_t*>(view->bytes.data());
    // The mapping is read-only; nothing ever writes through a weight tensor.
    const at::Tensor tensor =
        at::from_blob(data, view->shape, at::TensorOptions().dtype(ScalarTypeOf(view->dtype)));
    at::Tensor placed = tensor.to(m.device, m.dtype);
    if (placed.data_ptr() == data) aliased = true;
    return placed;
  };
  absl::Status loaded = CallTorch(absl::StrCat("loading weights from ", dir.string()),
                                  [&] { return (*impl)->LoadWeights(mapped); });
  if (!loaded.ok()) return loaded;
  // Converted weights own their memory; keep the mapping only if they read it.
  if (aliased) (*impl)->checkpoint.emplace(*std::move(checkpoint));
  return CausalLm(*std::move(impl));
}

absl::StatusOr<CausalLm> CausalLm::CreateRandom(const ModelConfig& config,
                                                const RuntimeOptions& options) {
  absl::StatusOr<std::unique_ptr<Impl>> impl = Impl::Prepare(config, options);
  if (!impl.ok()) return impl.status();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ExpectedTensor& t : ExpectedTensors(config)) shapes[t.name] = t.shape;
  const at::TensorOptions placed =
      at::TensorOptions().device((*impl)->device).dtype((*impl)->dtype);
  // Norm weights at 1 and small Gaussian matrices keep activations finite
  // through any depth, which is all a throughput measurement needs.
  auto random = [&](const std::string& name) -> at::Tensor {
    const std::vector<int64_t>& shape = shapes.at(name);
    if (name.find("norm") != std::string::npos) return at::ones(shape, placed);
    return at::randn(shape, placed).mul_(0.02);
  };
  absl::Status loaded = CallTorch("random weights", [&] { return (*impl)->LoadWeights(random); });
  if (!loaded.ok()) return loaded;
  return CausalLm(*std::move(impl));
}

absl::StatusOr<ForwardResult> CausalLm::Forward(absl::Span<const std::vector<int32_t>> batch,
                                                const ForwardOptions& options) const {
  if (absl::Status st = impl_->CheckBatch(batch, options.start_position, "before it"); !st.ok()) {
    return st;
  }
  if (absl::Status st = impl_->CheckAttentionOptions(batch, options); !st.ok()) return st;
  if (options.capture != nullptr && !(options.capture->shape() == impl_->config.stats_shape())) {
    return absl::InvalidArgumentError(
        absl::StrCat("capture statistics have shape ", ShapeString(options.capture->shape()),
                     ", the model needs ", ShapeString(impl_->config.stats_shape())));
  }
  return CallTorch("forward", [&]() -> absl::StatusOr<ForwardResult> {
    c10::InferenceMode inference;
    const Impl& m = *impl_;
    int64_t width = 0;
    for (const auto& seq : batch) width = std::max<int64_t>(width, seq.size());
    PaddedBatch padded = LeftPad(batch, width);
    for (int64_t& p : padded.positions) p += options.start_position;
    const int64_t b = padded.batch;
    const at::Tensor ids = ToDevice(padded.ids, {b, width}, at::kLong, m.device);
    const at::Tensor positions = ToDevice(padded.positions, {b, width}, at::kLong, m.device);
    const at::Tensor valid = ToDevice(padded.valid, {b, width}, at::kByte, m.device).to(at::kBool);
    const at::Tensor allowed = AllowedKeys(valid, positions, positions, 0, m.config.sliding_window);

    std::optional<EnergyCapture> capture;
    if (options.capture != nullptr) capture.emplace(m.config, m.device, valid, padded.real_tokens);
    absl::StatusOr<at::Tensor> decoded =
        m.Decode(ids, positions, allowed, nullptr, 0, capture ? &*capture : nullptr, &options);
    if (!decoded.ok()) return decoded.status();
    const at::Tensor& hidden = *decoded;

    ForwardResult result;
    const at::Tensor last =
        at::linear(hidden.select(1, width - 1), m.lm_head).to(at::kCPU, at::kFloat).contiguous();
    const int64_t vocab = last.size(1);
    for (int64_t i = 0; i < b; ++i) {
      const float* row = last.data_ptr<float>() + i * vocab;
      result.last_logits.emplace_back(row, row + vocab);
    }
    if (options.compute_nll) {
      result.mean_nll.assign(b, std::numeric_limits<double>::quiet_NaN());
      if (width > 1) {
        const at::Tensor logp =
            at::log_softmax(at::linear(hidden.narrow(1, 0, width - 1), m.lm_head), -1, at::kFloat);
        const at::Tensor target = ids.narrow(1, 1, width - 1).unsqueeze(-1);
        const at::Tensor picked = logp.gather(-1, target).squeeze(-1).to(at::kDouble);
        // A prediction counts when both its input and its target are real.
        const at::Tensor pairs = valid.narrow(1, 0, width - 1)
                                     .logical_and(valid.narrow(1, 1, width - 1))
                                     .to(at::kDouble);
        const at::Tensor nll = (-(picked * pairs).sum(1) / pairs.sum(1)).to(at::kCPU).contiguous();
        for (int64_t i = 0; i < b; ++i) {
          if (batch[i].size() > 1) result.mean_nll[i] = nll.data_ptr<double>()[i];
        }
      }
    }
    if (capture) {
      if (absl::Status st = capture->AddTo(*options.capture); !st.ok()) return st;
    }
    return result;
  });
}

absl::StatusOr<std::vector<std::vector<int32_t>>> CausalLm::Generate(
    absl::Span<const std::vector<int32_t>> prompts, const GenerateOptions& options) const {
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens must be >= 0, got ", options.max_new_tokens));
  }
  if (absl::Status st = impl_->CheckBatch(prompts, options.max_new_tokens, "to generate");
      !st.ok()) {
    return st;
  }
  std::vector<std::vector<int32_t>> generated(prompts.size());
  if (options.max_new_tokens == 0) return generated;

  return CallTorch("generate", [&]() -> absl::StatusOr<std::vector<std::vector<int32_t>>> {
    c10::InferenceMode inference;
    const Impl& m = *impl_;
    int64_t width = 0;
    for (const auto& seq : prompts) width = std::max<int64_t>(width, seq.size());
    const int64_t columns = width + options.max_new_tokens;
    // Host view of every column: prompt columns as padded, generated ones real,
    // at positions continuing each prompt.
    PaddedBatch padded = LeftPad(prompts, width);
    const int64_t b = padded.batch;
    std::vector<int64_t> positions(b * columns);
    std::vector<uint8_t> valid(b * columns, 1);
    for (int64_t i = 0; i < b; ++i) {
      for (int64_t c = 0; c < columns; ++c) {
        if (c < width) {
          positions[i * columns + c] = padded.positions[i * width + c];
          valid[i * columns + c] = padded.valid[i * width + c];
        } else {
          positions[i * columns + c] = static_cast<int64_t>(prompts[i].size()) + (c - width);
        }
      }
    }
    const at::Tensor all_positions = ToDevice(positions, {b, columns}, at::kLong, m.device);
    const at::Tensor all_valid = ToDevice(valid, {b, columns}, at::kByte, m.device).to(at::kBool);

    Impl::KvCache cache;
    const auto cache_options = at::TensorOptions().dtype(m.dtype).device(m.device);
    for (int l = 0; l < m.config.num_layers; ++l) {
      cache.k.push_back(
          at::zeros({b, m.config.num_kv_heads, columns, m.config.head_dim}, cache_options));
      cache.v.push_back(at::zeros_like(cache.k.back()));
    }

    std::vector<bool> done(b, false);
    at::Tensor ids = ToDevice(padded.ids, {b, width}, at::kLong, m.device);
    int64_t offset = 0;
    for (int step = 0; step < options.max_new_tokens; ++step) {
      const int64_t tokens = ids.size(1);
      const at::Tensor query_pos = all_positions.narrow(1, offset, tokens);
      const at::Tensor allowed = AllowedKeys(all_valid.narrow(1, 0, offset + tokens),
                                             all_positions.narrow(1, 0, offset + tokens), query_pos,
                                             offset, m.config.sliding_window);
      absl::StatusOr<at::Tensor> decoded =
          m.Decode(ids, query_pos, allowed, &cache, offset, nullptr);
      if (!decoded.ok()) return decoded.status();
      const at::Tensor& hidden = *decoded;
      const at::Tensor next =
          at::linear(hidden.select(1, tokens - 1), m.lm_head).argmax(-1);  // [B]
      const at::Tensor next_host = next.to(at::kCPU).contiguous();
      bool all_done = true;
      for (int64_t i = 0; i < b; ++i) {
        if (done[i]) continue;
        const int32_t token = static_cast<int32_t>(next_host.data_ptr<int64_t>()[i]);
        generated[i].push_back(token);
        const auto& eos = m.config.eos_token_ids;
        if (options.stop_at_eos && std::find(eos.begin(), eos.end(), token) != eos.end()) {
          done[i] = true;
        }
        all_done = all_done && done[i];
      }
      if (all_done) break;
      offset += tokens;
      ids = next.view({b, 1});
    }
    return generated;
  });
}

}  // namespace kvplan
