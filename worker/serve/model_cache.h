// The model a worker serves shards of: found on local disk, checked against
// the fingerprint the coordinator registered for the job's model, loaded once
// and kept until a shard of another model arrives.
//
// Where the checkpoint is: the coordinator stores a model's architecture and
// fingerprint but no path (paths differ per machine), so the worker is told
// either one directory for every job (`model_dir`, --model) or a directory
// holding one checkpoint per model id (`cache_dir`, --model-cache:
// <cache_dir>/<model_id>/config.json ...). Either way the fingerprint must
// match, so a wrong checkpoint can never produce statistics for a model.
//
// Example:
//   ModelCache models({.model_dir = "../shared/models/doc-llama-h64"});
//   absl::StatusOr<const LoadedModel*> m = models.Get("doc-llama", fingerprint);
//   (*m)->lm.Forward(...);
//
// Thread safety: not thread-safe.
#ifndef KVPLAN_WORKER_SERVE_MODEL_CACHE_H_
#define KVPLAN_WORKER_SERVE_MODEL_CACHE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "worker/model/transformer.h"
#include "worker/tokenizer/tokenizer.h"

namespace kvplan::serve {

struct LoadedModel {
  std::string model_id;
  std::string dir;
  std::string fingerprint;
  std::unique_ptr<Tokenizer> tokenizer;
  CausalLm lm;
};

struct ModelCacheOptions {
  // Exactly one of these is set (see the top comment).
  std::string model_dir;
  std::string cache_dir;
  RuntimeOptions runtime;
};

class ModelCache {
 public:
  explicit ModelCache(ModelCacheOptions options) : options_(std::move(options)) {}

  // The loaded model for `model_id`, loading it when it is not the current one.
  // FailedPrecondition when the checkpoint's fingerprint differs from
  // `fingerprint`; load errors as CausalLm::Load and LoadTokenizer give them.
  absl::StatusOr<const LoadedModel*> Get(const std::string& model_id,
                                         const std::string& fingerprint);

 private:
  ModelCacheOptions options_;
  std::optional<LoadedModel> current_;
};

}  // namespace kvplan::serve

#endif  // KVPLAN_WORKER_SERVE_MODEL_CACHE_H_
