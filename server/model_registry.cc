#include "server/model_registry.h"

#include "absl/strings/str_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "proto/wire_convert.h"

namespace kvplan::server {

using ::kvplan::wire::ValidateArchitecture;
using ::kvplan::wire::ValidateName;
namespace {

absl::StatusOr<v1::Model> ParseModel(std::string_view id, const std::string& bytes) {
  v1::Model model;
  if (!model.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrFormat("models/%s: stored record is corrupt", id));
  }
  return model;
}

}  // namespace

absl::StatusOr<v1::RegisterModelResponse> ModelRegistry::Register(
    const v1::RegisterModelRequest& request) {
  const std::string& fp = request.fingerprint();
  if (fp.empty() || fp.size() > 128) {
    return absl::InvalidArgumentError("fingerprint must be 1 to 128 characters");
  }
  for (char c : fp) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError("fingerprint must be printable ASCII without spaces");
    }
  }
  const std::string id = request.model_id().empty() ? fp.substr(0, 16) : request.model_id();
  if (absl::Status st = ValidateName(id, "model_id"); !st.ok()) return st;
  if (absl::Status st = ValidateArchitecture(request.architecture()); !st.ok()) return st;

  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::optional<std::string>> existing = store_->Get(Family::kModels, id);
  if (!existing.ok()) return existing.status();
  v1::RegisterModelResponse response;
  if (existing->has_value()) {
    absl::StatusOr<v1::Model> model = ParseModel(id, **existing);
    if (!model.ok()) return model.status();
    if (model->fingerprint() != fp || !google::protobuf::util::MessageDifferencer::Equals(
                                          model->architecture(), request.architecture())) {
      return absl::AlreadyExistsError(absl::StrFormat(
          "model '%s' is already registered with fingerprint %s and another architecture or "
          "fingerprint; register under another id",
          id, model->fingerprint()));
    }
    *response.mutable_model() = *std::move(model);
    response.set_created(false);
    return response;
  }
  v1::Model* model = response.mutable_model();
  model->set_model_id(id);
  model->set_fingerprint(fp);
  *model->mutable_architecture() = request.architecture();
  model->set_created_unix(clock_());
  Store::Batch batch;
  batch.Put(Family::kModels, id, model->SerializeAsString());
  if (absl::Status st = store_->Commit(batch); !st.ok()) return st;
  response.set_created(true);
  return response;
}

absl::StatusOr<v1::Model> ModelRegistry::Get(std::string_view model_id) const {
  absl::StatusOr<std::optional<std::string>> bytes = store_->Get(Family::kModels, model_id);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    return absl::NotFoundError(
        absl::StrFormat("no model '%s' is registered (kvplan models list)", std::string(model_id)));
  }
  return ParseModel(model_id, **bytes);
}

absl::StatusOr<v1::ListModelsResponse> ModelRegistry::List() const {
  v1::ListModelsResponse response;
  absl::Status st = store_->ScanRecords(
      Family::kModels, "", "",
      [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
        absl::StatusOr<v1::Model> m = ParseModel(key, std::string(value));
        if (!m.ok()) return m.status();
        *response.add_models() = *std::move(m);
        return true;
      });
  if (!st.ok()) return st;
  return response;
}

}  // namespace kvplan::server
