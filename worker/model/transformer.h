// A Llama-family causal language model running in LibTorch.
//
// `CausalLm` loads a Hugging Face checkpoint directory (see checkpoint.h and
// model_config.h for what is accepted), and runs it exactly as the Hugging Face
// implementation does: RMSNorm, GQA attention with split-half RoPE (cos/sin in
// fp32 from core's frequencies), SiLU-gated MLP, tied or separate lm_head.
// Batches may hold prompts of different lengths: they are left-padded, with
// positions counted from each prompt's first real token, so every prompt
// computes what it would alone.
//
// Optionally, a forward pass adds the per-(layer, KV head, RoPE block) query and
// key energies of every real token to a `BlockStats`, taken at the RoPE input
// (after q_norm/k_norm and bias) and summed on the device; no activation is kept.
//
// Torch stays behind this header: including it pulls in no LibTorch headers.
//
// Example:
//   absl::StatusOr<CausalLm> lm = CausalLm::Load("../shared/models/doc-llama-h64",
//                                                 {.device = "cpu", .dtype = ComputeDType::kF32});
//   if (!lm.ok()) return lm.status();
//   std::vector<std::vector<int32_t>> prompts = {{0, 407, 3601, 3248, 266}};
//   absl::StatusOr<std::vector<std::vector<int32_t>>> out =
//       lm->Generate(prompts, {.max_new_tokens = 32});
//   // (*out)[0] == {13, 578, 595, ...}: the 32 greedy tokens after the prompt.
//
//   absl::StatusOr<BlockStats> stats = BlockStats::Create(lm->config().stats_shape());
//   absl::StatusOr<ForwardResult> fwd = lm->Forward(prompts, {.capture = &*stats});
//
// Thread safety: a loaded model is immutable; Forward and Generate may run
// concurrently on different threads (each call allocates its own buffers), but
// calls that capture into the same BlockStats must not overlap.
#ifndef KVPLAN_WORKER_MODEL_TRANSFORMER_H_
#define KVPLAN_WORKER_MODEL_TRANSFORMER_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/block_stats.h"
#include "worker/model/attention_backend.h"
#include "worker/model/model_config.h"

namespace kvplan {

// The floating-point type activations and weights are computed in.
enum class ComputeDType { kF32, kBF16, kF16 };

// "fp32", "bf16", "fp16" (also accepted: "float32", "bfloat16", "float16").
absl::StatusOr<ComputeDType> ParseComputeDType(std::string_view name);
std::string_view ComputeDTypeName(ComputeDType dtype);

struct RuntimeOptions {
  // Where the model runs: "cpu", "cuda" (the current GPU) or "cuda:N".
  // Default: "cpu".
  std::string device = "cpu";
  // Compute dtype; weights stored in another dtype are converted once at load.
  // Default: fp32.
  ComputeDType dtype = ComputeDType::kF32;
};

struct ForwardOptions {
  // When set, the q/k block energies of every real (non-padding) token are
  // added to it, all or nothing. Its shape must be config().stats_shape().
  // Default: no capture.
  BlockStats* capture = nullptr;
  // When set, called once per layer with that layer's RoPE input (the capture
  // point above) for every position, copied to the host as fp32:
  // q [batch][tokens][num_q_heads][head_dim] (query head h reads KV head
  // h / group), k [batch][tokens][num_kv_heads][head_dim]. Sequences are
  // left-padded to the longest, padding included. For diagnostics: it moves
  // every activation to the host. Default: none.
  std::function<void(int layer, absl::Span<const float> q, absl::Span<const float> k)>
      observe_rope_input;
  // Also compute each sequence's mean next-token negative log-likelihood (nats).
  // Default: false.
  bool compute_nll = false;
  // When set, every layer's attention runs through it (attention_backend.h)
  // over the sequence it caches, instead of over this pass's keys alone. The
  // batch must hold one sequence; sliding-window models are refused.
  // Default: none.
  AttentionBackend* attention = nullptr;
  // Position of the batch's first token: nonzero only with `attention`, to
  // continue the sequence it caches (a decode step is a one-token Forward at
  // start_position = tokens so far). Default: 0.
  int64_t start_position = 0;
};

struct ForwardResult {
  // [batch][vocab]: the fp32 logits at each sequence's last token.
  std::vector<std::vector<float>> last_logits;
  // [batch], only with compute_nll: mean over the sequence's len-1 next-token
  // predictions; NaN for a one-token sequence.
  std::vector<double> mean_nll;
};

struct GenerateOptions {
  // Tokens to generate after each prompt, at most. Default: 32.
  int max_new_tokens = 32;
  // Stop a sequence after it produces an end-of-sequence id of the config
  // (which is kept in the output). Default: true.
  bool stop_at_eos = true;
};

class CausalLm {
 public:
  // Opens `dir`, validates config and tensors (checkpoint.h, model_config.h,
  // tensor_manifest.h give the errors), and places the weights on the device in
  // the compute dtype. When neither device nor dtype require a conversion, the
  // weights are the memory-mapped file itself (no copy); otherwise the mapping
  // is released after conversion, so one copy of the weights exists either way.
  // Further errors: InvalidArgument for a malformed device string;
  // Unavailable when the device does not exist (no CUDA in this LibTorch, or
  // fewer GPUs); Unimplemented when the device cannot compute in the dtype
  // (e.g. fp16 matmuls on a CPU LibTorch without them).
  static absl::StatusOr<CausalLm> Load(const std::filesystem::path& dir,
                                       const RuntimeOptions& options = {});

  // A model of `config`'s shape with random weights (norms at 1, matrices
  // N(0, 0.02²)), generated on the device: for throughput benchmarks of shapes
  // no checkpoint is at hand for. Not reproducible; errors as for Load.
  static absl::StatusOr<CausalLm> CreateRandom(const ModelConfig& config,
                                               const RuntimeOptions& options = {});

  CausalLm(CausalLm&&) noexcept;
  CausalLm& operator=(CausalLm&&) noexcept;
  ~CausalLm();

  const ModelConfig& config() const;
  // The device the model runs on, e.g. "cpu", "cuda:0".
  std::string device() const;
  ComputeDType dtype() const;
  // Whether the weights are read straight from the memory-mapped checkpoint.
  bool weights_mapped() const;

  // One forward pass over `batch` (token ids, each sequence starting at
  // position options.start_position, 0 by default). Errors: InvalidArgument
  // for an empty batch, an empty sequence, an id outside [0, vocab_size), a
  // sequence ending past max_position_embeddings (each named by index), a
  // capture of the wrong shape, or attention options that do not fit (above);
  // the attention backend's own errors; Internal/ResourceExhausted for
  // LibTorch failures (e.g. device OOM).
  absl::StatusOr<ForwardResult> Forward(absl::Span<const std::vector<int32_t>> batch,
                                        const ForwardOptions& options = {}) const;

  // Greedy decoding with a KV cache: the tokens generated after each prompt
  // (not including the prompt). Errors as for Forward, and InvalidArgument
  // when a prompt plus max_new_tokens exceeds max_position_embeddings or
  // max_new_tokens is negative.
  absl::StatusOr<std::vector<std::vector<int32_t>>> Generate(
      absl::Span<const std::vector<int32_t>> prompts, const GenerateOptions& options = {}) const;

 private:
  struct Impl;
  explicit CausalLm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_TRANSFORMER_H_
