// Text form of a plan validation result (kvplan.v1.PlanValidation), one table
// for every tool that prints one (`kvplan plans show`, `kvplan-worker validate`).
//
// Example:
//   out << ValidationLayerTable(validation, "  ");
//   //   layer   mae_plan    mae_tq   kl_plan     kl_tq top10_pl top10_tq
//   //   0         0.6895    0.7410   0.00562   0.00694    0.892    0.885
#ifndef KVPLAN_PROTO_VALIDATION_FORMAT_H_
#define KVPLAN_PROTO_VALIDATION_FORMAT_H_

#include <string>
#include <string_view>

#include "kvplan/v1/plan_service.pb.h"

namespace kvplan::wire {

// A header line and one line per layer (kernel MAE, softmax KL and top-10
// overlap of the plan and of uniform TQ-MSE), each starting with `indent`.
std::string ValidationLayerTable(const v1::PlanValidation& validation, std::string_view indent);

}  // namespace kvplan::wire

#endif  // KVPLAN_PROTO_VALIDATION_FORMAT_H_
