// Keys of the plan_versions and channels families and lookups over them, shared
// by the plan and channel registries (grammar in server/store.h).
//
// Example:
//   PlanVersionKey("llama", "default", 3);  // "llama/default/" + be64(3)
//   absl::StatusOr<v1::PlanVersion> v = LookupPlanVersion(store, "llama", "default", 0);  // latest
#ifndef KVPLAN_SERVER_PLAN_VERSIONS_H_
#define KVPLAN_SERVER_PLAN_VERSIONS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "kvplan/v1/common.pb.h"
#include "server/store.h"

namespace kvplan::server {

std::string PlanVersionPrefix(std::string_view model_id, std::string_view name);
std::string PlanVersionKey(std::string_view model_id, std::string_view name, uint64_t version);
std::string ChannelKey(std::string_view model_id, std::string_view channel);

// The stored version (0: the latest) of (model_id, name); NotFound naming it.
absl::StatusOr<v1::PlanVersion> LookupPlanVersion(const Store& store, std::string_view model_id,
                                                  std::string_view name, uint64_t version);

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_PLAN_VERSIONS_H_
