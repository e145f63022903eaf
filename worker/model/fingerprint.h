// Model identity: the content hash plans are bound to.
//
// A plan is only valid for the model whose q and k it was measured on, so the
// fingerprint covers exactly what produces them: the parsed architecture and
// RoPE description, and the bytes (with dtype and shape) of every tensor on the
// path from the residual stream to the RoPE input — input_layernorm, q_proj,
// k_proj, their biases, q_norm and k_norm of every layer. A fine-tune that
// changes attention gets a new fingerprint; one that changes only the MLP or
// lm_head does not, and its plans stay valid.
//
//   fingerprint := hex SHA-256 of
//       "kvplan-model-fingerprint-v1\n" architecture "\n" layers heads kv_heads head_dim "\n"
//       RopeSpecToJson(rope) "\n"
//       for each such tensor, in ExpectedTensors order: name dtype shape "\n" bytes
//
// Example:
//   absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open(dir);
//   absl::StatusOr<std::string> fp = ModelFingerprint(*ckpt);  // 64 hex digits
#ifndef KVPLAN_WORKER_MODEL_FINGERPRINT_H_
#define KVPLAN_WORKER_MODEL_FINGERPRINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "worker/model/checkpoint.h"

namespace kvplan {

// Reads the q/k-producing tensors of `checkpoint` (memory-mapped, so this costs
// one pass over ~1/6 of the weights). Errors as ModelConfigFromHf / CheckTensors.
absl::StatusOr<std::string> ModelFingerprint(const Checkpoint& checkpoint);

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_FINGERPRINT_H_
