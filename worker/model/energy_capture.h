// Per-(layer, KV head, RoPE block) q/k energy sums, accumulated on the device
// during one forward pass.
//
// Private to the worker's Torch translation units (it uses at::Tensor in its
// interface); the public face of capture is ForwardOptions::capture.
//
// Each layer's pre-RoPE q and k are squared in their compute dtype's fp32
// upcast, masked to real tokens, summed in fp64 and paired into blocks, into
// two small device tensors, so a forward pass keeps no activation alive and
// syncs with the host once, in AddTo.
//
// Example (inside a forward pass):
//   EnergyCapture capture(config, device, valid, n);  // valid: [B, T] bool, n true
//   for (int l = 0; l < layers; ++l) capture.Add(l, q, k);  // pre-RoPE
//   absl::Status st = capture.AddTo(stats);
#ifndef KVPLAN_WORKER_MODEL_ENERGY_CAPTURE_H_
#define KVPLAN_WORKER_MODEL_ENERGY_CAPTURE_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "absl/status/status.h"
#include "core/block_stats.h"
#include "worker/model/model_config.h"

namespace kvplan::torch_internal {

class EnergyCapture {
 public:
  // `valid`: [batch, tokens] bool on `device`, true for the `real_tokens` real
  // tokens (the host knows the count, so no device sync is needed for it).
  EnergyCapture(const ModelConfig& config, at::Device device, const at::Tensor& valid,
                int64_t real_tokens);

  // q: [batch, tokens, kv_heads, group, head_dim]; k: [batch, tokens, kv_heads,
  // head_dim]; both at the RoPE input, in the compute dtype.
  void Add(int layer, const at::Tensor& q, const at::Tensor& k);

  // Adds the sums to `stats` (shape config.stats_shape()), all or nothing.
  // Copies two [layers, kv_heads, blocks] tensors to the host.
  absl::Status AddTo(BlockStats& stats) const;

 private:
  // Σ x² over `sum_dims` (real tokens only), paired into blocks: [KVH, blocks] fp64.
  at::Tensor BlockSums(const at::Tensor& x, at::IntArrayRef sum_dims) const;

  ModelConfig config_;
  // Real-token mask as [batch, tokens] fp32, or undefined when every token is real.
  at::Tensor mask_;
  int64_t tokens_ = 0;
  // The two dims of every block, when they are not the split halves of the head.
  at::Tensor dim_a_, dim_b_;
  at::Tensor q_sums_;  // [layers, kv_heads, blocks] fp64
  at::Tensor k_sums_;
};

}  // namespace kvplan::torch_internal

#endif  // KVPLAN_WORKER_MODEL_ENERGY_CAPTURE_H_
