#include "server/plan_versions.h"

#include "absl/strings/str_format.h"

namespace kvplan::server {

std::string PlanVersionPrefix(std::string_view model_id, std::string_view name) {
  return absl::StrFormat("%s/%s/", std::string(model_id), std::string(name));
}

std::string PlanVersionKey(std::string_view model_id, std::string_view name, uint64_t version) {
  return PlanVersionPrefix(model_id, name) + EncodeBe64(version);
}

std::string ChannelKey(std::string_view model_id, std::string_view channel) {
  return absl::StrFormat("%s/%s", std::string(model_id), std::string(channel));
}

absl::StatusOr<v1::PlanVersion> LookupPlanVersion(const Store& store, std::string_view model_id,
                                                  std::string_view name, uint64_t version) {
  std::string key;
  if (version == 0) {
    absl::StatusOr<std::optional<std::string>> last =
        store.LastKey(Family::kPlanVersions, PlanVersionPrefix(model_id, name));
    if (!last.ok()) return last.status();
    if (!last->has_value()) {
      return absl::NotFoundError(absl::StrFormat("model '%s' has no plan named '%s'",
                                                 std::string(model_id), std::string(name)));
    }
    key = **last;
  } else {
    key = PlanVersionKey(model_id, name, version);
  }
  absl::StatusOr<std::optional<std::string>> bytes = store.Get(Family::kPlanVersions, key);
  if (!bytes.ok()) return bytes.status();
  if (!bytes->has_value()) {
    return absl::NotFoundError(absl::StrFormat("model '%s' has no version %d of plan '%s'",
                                               std::string(model_id), version, std::string(name)));
  }
  v1::PlanVersion out;
  if (!out.ParseFromString(**bytes)) {
    return absl::DataLossError(absl::StrFormat("plan_versions/%s/%s: stored record is corrupt",
                                               std::string(model_id), std::string(name)));
  }
  return out;
}

}  // namespace kvplan::server
