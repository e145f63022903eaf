// The tensors a Llama-family checkpoint must hold, and the check that it does.
//
// Run before any weight is touched: a checkpoint that does not match its
// config (a missing layer, a transposed projection, an integer tensor where
// weights belong) is refused with the tensor's name instead of failing deep
// inside a matmul, or worse, computing garbage.
//
// Example:
//   for (const ExpectedTensor& t : ExpectedTensors(config)) { ... }
//   // {"model.layers.0.self_attn.k_proj.weight", {128, 384}}, ...
//   absl::Status st = CheckTensors(config, checkpoint);
//   // InvalidArgument: "tensor 'model.layers.3.mlp.up_proj.weight' has shape
//   //   [384, 1024], config expects [1024, 384]"
#ifndef KVPLAN_WORKER_MODEL_TENSOR_MANIFEST_H_
#define KVPLAN_WORKER_MODEL_TENSOR_MANIFEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/model/checkpoint.h"
#include "worker/model/model_config.h"

namespace kvplan {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor the forward pass reads, with the shape the config implies, in
// load order (embedding, then layer by layer, then final norm and lm_head).
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);

// OK when `checkpoint` holds every expected tensor with its shape and a float
// dtype (F32, F16 or BF16). Otherwise InvalidArgument naming the first tensor
// that is missing, misshapen or mistyped, with what was expected. Extra
// tensors (e.g. an lm_head copy in a tied model) are ignored.
absl::Status CheckTensors(const ModelConfig& config, const Checkpoint& checkpoint);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_TENSOR_MANIFEST_H_
