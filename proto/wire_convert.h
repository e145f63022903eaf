// Conversions between the wire messages (kvplan.v1) and core's types, with the
// validation the wire needs (ranges, names) done once here.
//
// Example:
//   absl::StatusOr<PlanOptions> options = PlanOptionsFromProto(request.options());
//   // OutOfRange: "k_bits 9 is outside [min_bits 1, max_bits 8]"
#ifndef KVPLAN_PROTO_WIRE_CONVERT_H_
#define KVPLAN_PROTO_WIRE_CONVERT_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/plan.h"
#include "core/rope.h"
#include "core/whatif.h"
#include "kvplan/v1/common.pb.h"
#include "kvplan/v1/whatif_service.pb.h"

namespace kvplan::wire {

// Ids, plan names and channel names: [A-Za-z0-9._-], 1 to 64 characters.
// InvalidArgument naming `what` otherwise.
absl::Status ValidateName(std::string_view name, std::string_view what);

v1::RopeSpec RopeSpecToProto(const RopeSpec& rope);
// InvalidArgument naming the bad field (via RopeSpec::Validate).
absl::StatusOr<RopeSpec> RopeSpecFromProto(const v1::RopeSpec& proto);

// Checks an architecture for registration: positive sizes within the ranges the
// proto documents, q heads a multiple of KV heads, head_dim equal to the rope's.
absl::Status ValidateArchitecture(const v1::ModelArchitecture& arch);

// InvalidArgument for NaN budgets or a bad bit range; OutOfRange for budgets
// outside it. Zero fields take the documented defaults.
absl::StatusOr<PlanOptions> PlanOptionsFromProto(const v1::BudgetOptions& proto);
v1::BudgetOptions PlanOptionsToProto(const PlanOptions& options);

ScoreKind ScoreFromProto(v1::BudgetOptions::Score score);
v1::BudgetOptions::Score ScoreToProto(ScoreKind score);

// A what-if request checked as PlanOptionsFromProto checks budgets (each K and V
// budget, 1 to 64 of each; context and batch >= 0). k_group_align is copied as
// is: RunWhatIf checks it against the statistics' head_dim.
absl::StatusOr<WhatIfRequest> WhatIfRequestFromProto(const v1::WhatIfRequest& proto);
v1::WhatIfRow WhatIfRowToProto(const WhatIfResult& result);

}  // namespace kvplan::wire

#endif  // KVPLAN_PROTO_WIRE_CONVERT_H_
