#include "client/lib/plan_verify.h"

#include <string>

#include "absl/strings/str_format.h"

namespace kvplan::client {

absl::StatusOr<KvPlan> VerifyPlan(std::string_view plan_json, std::string_view expected_digest,
                                  std::string_view model_fingerprint) {
  absl::StatusOr<KvPlan> plan = PlanFromJson(plan_json);
  if (!plan.ok()) {
    return absl::Status(plan.status().code(),
                        absl::StrFormat("plan %s refused: %s", std::string(expected_digest),
                                        plan.status().message()));
  }
  const std::string digest = PlanDigest(*plan);
  if (digest != expected_digest) {
    return absl::DataLossError(absl::StrFormat(
        "plan refused: it was announced as %s but its content hashes to %s (altered in transit "
        "or on disk); keep serving the previous plan and check the coordinator's store",
        std::string(expected_digest), digest));
  }
  if (plan->model_fingerprint != model_fingerprint) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "plan %s is for model %s, this node runs %s; point the node at the channel of its own "
        "model or promote a plan built for it",
        digest, plan->model_fingerprint, std::string(model_fingerprint)));
  }
  return plan;
}

}  // namespace kvplan::client
