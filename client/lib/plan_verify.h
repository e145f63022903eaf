// The checks every plan passes before a serving node uses it, wherever it came
// from (the coordinator, a push, the disk cache).
//
// Example:
//   absl::StatusOr<KvPlan> plan = VerifyPlan(json, /*expected_digest=*/id, my_fingerprint);
//   // FailedPrecondition: "plan 3f2a... is for model fp-A, this node runs fp-B; ..."
#ifndef KVPLAN_CLIENT_LIB_PLAN_VERIFY_H_
#define KVPLAN_CLIENT_LIB_PLAN_VERIFY_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "core/plan.h"

namespace kvplan::client {

// Parses `plan_json` and checks, in order:
//   - the format version is the one this build reads and the content hashes to
//     the digest the JSON names (core's PlanFromJson; its code, the message
//     prefixed with which plan was refused);
//   - that digest equals `expected_digest`, the id the plan was asked for or
//     announced under (DataLoss: altered in transit or on disk);
//   - the plan is bound to `model_fingerprint` (FailedPrecondition naming both).
absl::StatusOr<KvPlan> VerifyPlan(std::string_view plan_json, std::string_view expected_digest,
                                  std::string_view model_fingerprint);

}  // namespace kvplan::client

#endif  // KVPLAN_CLIENT_LIB_PLAN_VERIFY_H_
