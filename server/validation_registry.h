// Validation results of plans: the fidelity diagnostic of a plan against
// uniform TQ-MSE at the same K budget (DESIGN.md §2), attached by workers
// (`kvplan-worker validate`) and read by promotion gating.
//
// Domain logic only (no gRPC). Plans are immutable and content-addressed, so a
// result is its own record under the plan's id (plan_validations family,
// grammar in store.h), numbered from 1 per plan; a plan may collect several
// (other prompt sets, other machines) and the latest one counts. The
// coordinator, not the worker, computes the summary and the verdict, so every
// result is judged by one rule.
//
// The verdict rule: a result passes when the plan's mean kernel MAE over
// layers is below uniform TQ-MSE's AND the plan wins (has the lower MAE on) at
// least ceil(min_win_fraction × layers) layers. The mean alone could hide a
// plan that is much better on a few layers and worse on most, which is the
// signature of statistics that do not describe the model (stale statistics,
// another RoPE layout); demanding every layer would fail good plans of deep
// models on a layer or two that tie. The paper won 367 of 367 layers, so 3/4
// by default is lenient for a correct plan and still refuses a wrong one.
//
// Example:
//   ValidationRegistry validations(store.get(), {.min_win_fraction = 0.75}, clock);
//   absl::StatusOr<v1::AttachValidationResponse> r = validations.Attach(request);
//   // r->validation().passed(), r->validation().verdict()
//   absl::StatusOr<std::optional<v1::PlanValidation>> latest =
//       LatestValidation(*store, plan_id);
//
// Thread safety: thread-safe.
#ifndef KVPLAN_SERVER_VALIDATION_REGISTRY_H_
#define KVPLAN_SERVER_VALIDATION_REGISTRY_H_

#include <optional>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/plan.h"
#include "kvplan/v1/plan_service.pb.h"
#include "server/clock.h"
#include "server/store.h"

namespace kvplan::server {

struct ValidationRule {
  // Fraction of the plan's layers it must win, in (0, 1]. Default: 0.75.
  double min_win_fraction = 0.75;
};

// InvalidArgument naming the problem when `rule` is out of range.
absl::Status CheckValidationRule(const ValidationRule& rule);

// Checks a result's measurements against `plan` (errors as
// PlanService.AttachValidation documents) and sets the fields the coordinator
// owns: the means, layers_won, passed, verdict and min_win_fraction.
absl::Status JudgeValidation(const KvPlan& plan, const ValidationRule& rule,
                             v1::PlanValidation& validation);

// The plan's latest validation, nullopt when it has none (or no such plan).
absl::StatusOr<std::optional<v1::PlanValidation>> LatestValidation(const Store& store,
                                                                   std::string_view plan_id);

class ValidationRegistry {
 public:
  // `store` must outlive the registry; `rule` must pass CheckValidationRule.
  ValidationRegistry(Store* store, ValidationRule rule, Clock clock)
      : store_(store), rule_(rule), clock_(std::move(clock)) {}

  // Judges and stores a result in one synced batch; errors as
  // PlanService.AttachValidation documents, and nothing is stored then. The
  // same measurements as the plan's latest result store nothing and return
  // that result (created = false), so retries are safe.
  absl::StatusOr<v1::AttachValidationResponse> Attach(const v1::AttachValidationRequest& request);
  // Oldest first; NotFound for an unknown plan.
  absl::StatusOr<v1::ListValidationsResponse> List(std::string_view plan_id) const;

 private:
  Store* store_;
  ValidationRule rule_;
  Clock clock_;
  // Serializes sequence assignment (read the last, write the next).
  absl::Mutex write_mu_;
};

}  // namespace kvplan::server

#endif  // KVPLAN_SERVER_VALIDATION_REGISTRY_H_
