// A Hugging Face checkpoint directory, opened for reading without copying.
//
// Holds `config.json` (parsed) and the memory-mapped safetensors weights: one
// `model.safetensors`, or the shards that `model.safetensors.index.json` names.
// Tensors are found by name across shards; their views point into the
// mappings, which live as long as the Checkpoint.
//
// Example:
//   absl::StatusOr<Checkpoint> ckpt = Checkpoint::Open("../shared/models/doc-llama-h64");
//   if (!ckpt.ok()) return ckpt.status();
//   const TensorView* q = ckpt->Find("model.layers.0.self_attn.q_proj.weight");
//   int layers = ckpt->config()["num_hidden_layers"];  // 6
//
// Thread safety: immutable after Open.
#ifndef KVPLAN_WORKER_MODEL_CHECKPOINT_H_
#define KVPLAN_WORKER_MODEL_CHECKPOINT_H_

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"
#include "worker/model/safetensors.h"

namespace kvplan {

class Checkpoint {
 public:
  // Opens `dir`. Errors name the file at fault:
  //   NotFound: no directory, no config.json, no weights file, or a shard the
  //     index names is missing;
  //   InvalidArgument: config.json or the index is not valid JSON of the
  //     expected form, or the index names a shard outside `dir`;
  //   DataLoss: a tensor the index places in a shard is not in it;
  //   and any error of SafetensorsFile::Open.
  static absl::StatusOr<Checkpoint> Open(const std::filesystem::path& dir);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  // The parsed config.json (a JSON object).
  const nlohmann::json& config() const { return *config_; }
  const std::filesystem::path& dir() const { return dir_; }

  // The tensor `name` in whichever shard holds it, or nullptr.
  const TensorView* Find(std::string_view name) const;
  // Names of every tensor, sorted.
  std::vector<std::string> TensorNames() const;
  // Total bytes of tensor data mapped.
  uint64_t total_bytes() const;

 private:
  Checkpoint(std::filesystem::path dir, std::unique_ptr<nlohmann::json> config,
             std::vector<SafetensorsFile> shards);

  std::filesystem::path dir_;
  std::unique_ptr<nlohmann::json> config_;
  std::vector<SafetensorsFile> shards_;
  // Tensor name -> (shard index, tensor position within the shard).
  absl::flat_hash_map<std::string, std::pair<size_t, size_t>> index_;
};

}  // namespace kvplan

#endif  // KVPLAN_WORKER_MODEL_CHECKPOINT_H_
