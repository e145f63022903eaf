#include "proto/validation_format.h"

#include "absl/strings/str_format.h"

namespace kvplan::wire {

std::string ValidationLayerTable(const v1::PlanValidation& validation, std::string_view indent) {
  std::string out =
      absl::StrFormat("%s%-6s %9s %9s %9s %9s %8s %8s\n", std::string(indent), "layer", "mae_plan",
                      "mae_tq", "kl_plan", "kl_tq", "top10_pl", "top10_tq");
  for (const v1::LayerValidation& l : validation.layers()) {
    out += absl::StrFormat("%s%-6d %9.4f %9.4f %9.5f %9.5f %8.3f %8.3f\n", std::string(indent),
                           l.layer(), l.plan_mae(), l.uniform_mae(), l.plan_kl(), l.uniform_kl(),
                           l.plan_top10(), l.uniform_top10());
  }
  return out;
}

}  // namespace kvplan::wire
