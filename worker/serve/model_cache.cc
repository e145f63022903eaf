#include "worker/serve/model_cache.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_format.h"
#include "worker/model/checkpoint.h"
#include "worker/model/fingerprint.h"

namespace kvplan::serve {

absl::StatusOr<const LoadedModel*> ModelCache::Get(const std::string& model_id,
                                                   const std::string& fingerprint) {
  if (current_ && current_->model_id == model_id && current_->fingerprint == fingerprint) {
    return &*current_;
  }
  // Free the old weights before loading new ones: one model in memory at a time.
  current_.reset();
  const std::string dir = !options_.model_dir.empty()
                              ? options_.model_dir
                              : (std::filesystem::path(options_.cache_dir) / model_id).string();
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<std::string> local = ModelFingerprint(*checkpoint);
  if (!local.ok()) return local.status();
  if (*local != fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has fingerprint %s but the coordinator's model '%s' has %s; point --model or "
        "--model-cache at that model's checkpoint",
        dir, *local, model_id, fingerprint));
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = LoadTokenizer(dir);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<CausalLm> lm = CausalLm::Load(dir, options_.runtime);
  if (!lm.ok()) return lm.status();
  current_.emplace(LoadedModel{.model_id = model_id,
                               .dir = dir,
                               .fingerprint = fingerprint,
                               .tokenizer = *std::move(tokenizer),
                               .lm = *std::move(lm)});
  return &*current_;
}

}  // namespace kvplan::serve
